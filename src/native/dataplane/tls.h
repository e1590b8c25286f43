// TLS 1.3 contexts for HBONE, built from PEM handed over by TypeScript
// (DESIGN.md §5: TLS 1.3 only, ALPN h2, mutual authentication against the
// trust bundle), and the peer's SPIFFE ID read from its verified certificate.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <vector>

namespace warren {

struct SslCtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;
using SslPtr = std::unique_ptr<SSL, SslFree>;

// One identity's credentials: a server and a client context sharing key,
// chain and trust store. Immutable once built; rotation builds a new one and
// live connections keep the SSL_CTX reference they hold.
struct Identity {
  SslCtxPtr server;
  SslCtxPtr client;
  // the trust bundle's PEMs, as given: only a change of them re-verifies live sessions
  std::string roots;
};

// Builds both contexts or returns nullptr with *error set (never naming key bytes).
std::shared_ptr<Identity> BuildIdentity(std::string& keyPem, const std::string& chainPem,
                                        const std::vector<std::string>& bundlePems,
                                        std::string* error);

// The single URI SAN of the verified peer certificate when it is a spiffe://
// URI; empty when the handshake did not verify, there is no certificate, or
// it carries zero or several URI SANs.
std::string PeerSpiffeId(SSL* ssl);

// Does the peer chain this connection verified at its handshake still chain
// to a root of `ctx`'s trust store (a trust bundle swapped in since)?
bool PeerStillTrusted(SSL* ssl, SSL_CTX* ctx);

}  // namespace warren
