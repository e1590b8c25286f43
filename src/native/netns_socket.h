// Shared by the socket helpers (netns_socket.cc), policy routing (netns_route.cc)
// and the native data path (dataplane/*.cc): errno names, RAII descriptors and
// sockets made inside a netns.
#pragma once

#include <napi.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

// From <linux/netfilter_ipv4.h> and <linux/netfilter_ipv6/ip6_tables.h>;
// spelled out because those headers clash with glibc's netinet headers.
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

namespace warren {

// The errno's symbolic name ("ECONNREFUSED"), what the TypeScript side branches on;
// "" for 0 and "EUNKNOWN" for a number glibc has no name for.
inline std::string ErrnoName(int err) {
  if (err == 0) return "";
  const char* name = strerrorname_np(err);
  return name != nullptr ? name : "EUNKNOWN";
}

struct SysError {
  int err;
  std::string operation;
};

// The error JavaScript sees (netns-socket.ts turns it into NetnsSocketError): errno's name and the operation.
Napi::Error SysErrorValue(Napi::Env env, const SysError& e);
void ThrowSysError(Napi::Env env, const SysError& e);

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept {
    reset(o.release());
    return *this;
  }
  int get() const { return fd_; }
  void reset(int fd = -1) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

// Enters a netns for its lifetime (an empty path: stays); the destructor returns
// the thread home, and aborts the process if it cannot.
class NetnsGuard {
 public:
  NetnsGuard() = default;
  NetnsGuard(const NetnsGuard&) = delete;
  NetnsGuard& operator=(const NetnsGuard&) = delete;
  bool Enter(const std::string& path, SysError* error);
  ~NetnsGuard();

 private:
  int home_ = -1;
};

struct SocketOptions {
  std::string netns;
  int family = AF_INET;
  std::string address;  // empty: wildcard / no bind
  int port = 0;
  bool hasMark = false;
  uint32_t mark = 0;
  bool reusePort = false;
  bool transparent = false;
  bool freebind = false;
  bool v6Only = true;
  int backlog = 511;
};

// A new non-blocking TCP socket made inside o.netns (the calling thread goes
// there and back), or -1 with *error set.
int MakeSocket(const SocketOptions& o, bool listening, bool bindIt, SysError* error);

// Adds the native data path's constructor (dataplane/binding.cc).
void InitDataplane(Napi::Env env, Napi::Object exports);

}  // namespace warren
