#include "tls.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <string.h>

namespace warren {

namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct NamesFree {
  void operator()(GENERAL_NAMES* n) const { GENERAL_NAMES_free(n); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;

std::string OpenSslError(const char* what) {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return std::string(what) + ": " + (e == 0 ? "unknown error" : buf);
}

std::vector<X509Ptr> ReadCerts(const std::string& pem) {
  std::vector<X509Ptr> out;
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return out;
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(x);
  ERR_clear_error();  // the loop ends on "no start line"
  return out;
}

const unsigned char kAlpn[] = {2, 'h', '2'};

int SelectH2(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
             unsigned int inlen, void*) {
  unsigned char* sel = nullptr;
  if (SSL_select_next_proto(&sel, outlen, kAlpn, sizeof(kAlpn), in, inlen) !=
      OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

SslCtxPtr MakeCtx(bool server, EVP_PKEY* key, const std::vector<X509Ptr>& chain,
                  const std::vector<X509Ptr>& roots, std::string* error) {
  SslCtxPtr ctx(SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()));
  if (!ctx) {
    *error = OpenSslError("SSL_CTX_new");
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(ctx.get(), TLS1_3_VERSION);
  // Idle pooled connections keep no 34 KiB record buffers; no tickets or
  // session cache: HBONE connections are long-lived and pooled.
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                                  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // No read-ahead: the session's read BIO (engine.cc, Session::ReadBio) already
  // reads a peer's whole batch in one read(2) and hands OpenSSL each record
  // from memory.
  // AES-128-GCM first (BoringSSL's and Go's TLS 1.3 order; OpenSSL's puts
  // AES-256 first): 10 AES rounds instead of 14, ~15 % less cipher work per
  // byte on this data path's hottest function (docs/architecture.md, native
  // data path). The other two suites stay offered, so every TLS 1.3 peer,
  // the Node data path's included, still agrees on one; the server's order
  // decides, so a peer that lists AES-256 first still gets AES-128.
  if (SSL_CTX_set_ciphersuites(ctx.get(), "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256") != 1) {
    *error = OpenSslError("setting the TLS 1.3 cipher suites");
    return nullptr;
  }
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx.get(), 0);
  if (SSL_CTX_use_certificate(ctx.get(), chain[0].get()) != 1 ||
      SSL_CTX_use_PrivateKey(ctx.get(), key) != 1 || SSL_CTX_check_private_key(ctx.get()) != 1) {
    *error = OpenSslError("the certificate does not match the key");
    return nullptr;
  }
  for (size_t i = 1; i < chain.size(); i++) {
    if (SSL_CTX_add1_chain_cert(ctx.get(), chain[i].get()) != 1) {
      *error = OpenSslError("adding a chain certificate");
      return nullptr;
    }
  }
  X509_STORE* store = SSL_CTX_get_cert_store(ctx.get());
  for (const auto& r : roots) {
    if (X509_STORE_add_cert(store, r.get()) != 1) {
      *error = OpenSslError("adding a trust bundle root");
      return nullptr;
    }
  }
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  if (server) {
    SSL_CTX_set_alpn_select_cb(ctx.get(), SelectH2, nullptr);
  } else if (SSL_CTX_set_alpn_protos(ctx.get(), kAlpn, sizeof(kAlpn)) != 0) {
    *error = OpenSslError("setting ALPN");
    return nullptr;
  }
  return ctx;
}

}  // namespace

std::shared_ptr<Identity> BuildIdentity(std::string& keyPem, const std::string& chainPem,
                                        const std::vector<std::string>& bundlePems,
                                        std::string* error) {
  std::unique_ptr<EVP_PKEY, PkeyFree> key;
  {
    BioPtr bio(BIO_new_mem_buf(keyPem.data(), static_cast<int>(keyPem.size())));
    if (bio) key.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  }
  OPENSSL_cleanse(keyPem.data(), keyPem.size());
  if (!key) {
    ERR_clear_error();
    *error = "the private key is not a PEM private key";
    return nullptr;
  }
  std::vector<X509Ptr> chain = ReadCerts(chainPem);
  if (chain.empty()) {
    *error = "the certificate chain holds no PEM certificate";
    return nullptr;
  }
  std::vector<X509Ptr> roots;
  for (const auto& pem : bundlePems)
    for (auto& c : ReadCerts(pem)) roots.push_back(std::move(c));
  if (roots.empty()) {
    *error = "the trust bundle holds no PEM certificate";
    return nullptr;
  }
  auto id = std::make_shared<Identity>();
  id->server = MakeCtx(true, key.get(), chain, roots, error);
  if (!id->server) return nullptr;
  id->client = MakeCtx(false, key.get(), chain, roots, error);
  if (!id->client) return nullptr;
  for (const auto& pem : bundlePems) id->roots += pem;
  return id;
}

std::string PeerSpiffeId(SSL* ssl) {
  if (SSL_get_verify_result(ssl) != X509_V_OK) return "";
  X509Ptr cert(SSL_get1_peer_certificate(ssl));
  if (!cert) return "";
  std::unique_ptr<GENERAL_NAMES, NamesFree> names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr)));
  if (!names) return "";
  std::string uri;
  int uris = 0;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); i++) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names.get(), i);
    if (n->type != GEN_URI) continue;
    uris++;
    const ASN1_IA5STRING* s = n->d.uniformResourceIdentifier;
    uri.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
               static_cast<size_t>(ASN1_STRING_length(s)));
  }
  // SPIFFE X.509-SVID: exactly one URI SAN; no NUL smuggled into it.
  if (uris != 1 || uri.compare(0, 9, "spiffe://") != 0 || uri.find('\0') != std::string::npos)
    return "";
  return uri;
}

bool PeerStillTrusted(SSL* ssl, SSL_CTX* ctx) {
  X509Ptr leaf(SSL_get1_peer_certificate(ssl));
  if (!leaf) return false;
  std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> check(X509_STORE_CTX_new(), X509_STORE_CTX_free);
  if (!check || X509_STORE_CTX_init(check.get(), SSL_CTX_get_cert_store(ctx), leaf.get(), SSL_get_peer_cert_chain(ssl)) != 1)
    return false;
  return X509_verify_cert(check.get()) == 1;
}

}  // namespace warren
