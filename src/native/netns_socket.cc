// Sockets owned by this process but living in another network namespace.
//
// The node agent must listen and connect *inside* pods' network namespaces
// (docs/architecture.md §2). A socket belongs to the netns of the thread that created it,
// so we switch this thread with setns(2), create and configure the socket, and
// switch back before returning. The switch back is mandatory: a thread left in
// a pod's netns would silently send the agent's own traffic from that pod, so
// if it fails we abort rather than continue in an unknown namespace.

#include <napi.h>

#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "fd_passing.h"
#include "c_heap.h"
#include "netns_socket.h"
#include "netns_nft.h"
#include "netns_route.h"

namespace warren {

Napi::Error SysErrorValue(Napi::Env env, const SysError& e) {
  std::string errname = ErrnoName(e.err);
  Napi::Error error = Napi::Error::New(env, errname + " " + e.operation);
  error.Set("errno", Napi::String::New(env, errname));
  error.Set("operation", Napi::String::New(env, e.operation));
  return error;
}

void ThrowSysError(Napi::Env env, const SysError& e) { SysErrorValue(env, e).ThrowAsJavaScriptException(); }

bool NetnsGuard::Enter(const std::string& path, SysError* error) {
  if (path.empty()) return true;
  Fd target(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (target.get() < 0) {
    *error = {errno, "opening netns " + path};
    return false;
  }
  Fd home(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  if (home.get() < 0) {
    *error = {errno, "opening own netns /proc/thread-self/ns/net"};
    return false;
  }
  if (setns(target.get(), CLONE_NEWNET) != 0) {
    *error = {errno, "entering netns " + path};
    return false;
  }
  home_ = home.release();
  return true;
}

NetnsGuard::~NetnsGuard() {
  if (home_ < 0) return;
  if (setns(home_, CLONE_NEWNET) != 0) {
    // Continuing would run the agent inside a pod's network namespace.
    fprintf(stderr, "warren: fatal: cannot return to own netns: %s\n", strerror(errno));
    abort();
  }
  close(home_);
}

namespace {

bool SetInt(int fd, int level, int name, int value, const char* what, SysError* error) {
  if (setsockopt(fd, level, name, &value, sizeof(value)) != 0) {
    *error = {errno, std::string("setting ") + what};
    return false;
  }
  return true;
}

bool Configure(int fd, const SocketOptions& o, SysError* error) {
  if (!SetInt(fd, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY", error)) return false;
  if (o.hasMark) {
    uint32_t mark = o.mark;
    if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) != 0) {
      *error = {errno, "setting SO_MARK"};
      return false;
    }
  }
  if (o.reusePort && !SetInt(fd, SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT", error)) return false;
  if (o.family == AF_INET6) {
    if (!SetInt(fd, IPPROTO_IPV6, IPV6_V6ONLY, o.v6Only ? 1 : 0, "IPV6_V6ONLY", error)) return false;
    if (o.transparent &&
        !SetInt(fd, IPPROTO_IPV6, IPV6_TRANSPARENT, 1, "IPV6_TRANSPARENT", error))
      return false;
    if (o.freebind && !SetInt(fd, IPPROTO_IPV6, IPV6_FREEBIND, 1, "IPV6_FREEBIND", error))
      return false;
  } else {
    if (o.transparent && !SetInt(fd, IPPROTO_IP, IP_TRANSPARENT, 1, "IP_TRANSPARENT", error))
      return false;
    if (o.freebind && !SetInt(fd, IPPROTO_IP, IP_FREEBIND, 1, "IP_FREEBIND", error)) return false;
  }
  return true;
}

bool Bind(int fd, const SocketOptions& o, SysError* error) {
  sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  socklen_t len;
  std::string shown = (o.address.empty() ? std::string(o.family == AF_INET6 ? "::" : "0.0.0.0")
                                         : o.address);
  if (o.family == AF_INET6) {
    auto* sa = reinterpret_cast<sockaddr_in6*>(&ss);
    sa->sin6_family = AF_INET6;
    sa->sin6_port = htons(static_cast<uint16_t>(o.port));
    if (!o.address.empty() && inet_pton(AF_INET6, o.address.c_str(), &sa->sin6_addr) != 1) {
      *error = {EINVAL, "parsing IPv6 address " + o.address};
      return false;
    }
    len = sizeof(sockaddr_in6);
  } else {
    auto* sa = reinterpret_cast<sockaddr_in*>(&ss);
    sa->sin_family = AF_INET;
    sa->sin_port = htons(static_cast<uint16_t>(o.port));
    if (!o.address.empty() && inet_pton(AF_INET, o.address.c_str(), &sa->sin_addr) != 1) {
      *error = {EINVAL, "parsing IPv4 address " + o.address};
      return false;
    }
    len = sizeof(sockaddr_in);
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    *error = {errno, "binding " + shown + ":" + std::to_string(o.port)};
    return false;
  }
  return true;
}

}  // namespace

int MakeSocket(const SocketOptions& o, bool listening, bool bindIt, SysError* error) {
  Fd fd;
  {
    NetnsGuard ns;
    if (!ns.Enter(o.netns, error)) return -1;
    fd.reset(socket(o.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP));
    if (fd.get() < 0) {
      *error = {errno, "creating socket"};
      return -1;
    }
  }
  // Options and bind do not depend on the thread's netns: the socket already
  // belongs to the pod's, so the window spent switched stays minimal.
  if (!Configure(fd.get(), o, error)) return -1;
  // As every server does: a restarted listener must not wait out TIME_WAIT.
  if (listening && !SetInt(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR", error)) return -1;
  if (bindIt && !Bind(fd.get(), o, error)) return -1;
  if (listening && listen(fd.get(), o.backlog) != 0) {
    *error = {errno, "listening on port " + std::to_string(o.port)};
    return -1;
  }
  return fd.release();
}

}  // namespace warren

namespace {

using namespace warren;

SocketOptions ParseOptions(const Napi::Object& obj) {
  SocketOptions o;
  if (obj.Has("netns") && obj.Get("netns").IsString())
    o.netns = obj.Get("netns").As<Napi::String>().Utf8Value();
  if (obj.Has("family") && obj.Get("family").IsNumber())
    o.family = obj.Get("family").As<Napi::Number>().Int32Value() == 6 ? AF_INET6 : AF_INET;
  if (obj.Has("address") && obj.Get("address").IsString())
    o.address = obj.Get("address").As<Napi::String>().Utf8Value();
  if (obj.Has("port") && obj.Get("port").IsNumber())
    o.port = obj.Get("port").As<Napi::Number>().Int32Value();
  if (obj.Has("mark") && obj.Get("mark").IsNumber()) {
    o.hasMark = true;
    o.mark = obj.Get("mark").As<Napi::Number>().Uint32Value();
  }
  auto flag = [&obj](const char* name, bool fallback) {
    return obj.Has(name) && obj.Get(name).IsBoolean() ? obj.Get(name).As<Napi::Boolean>().Value()
                                                      : fallback;
  };
  o.reusePort = flag("reusePort", false);
  o.transparent = flag("transparent", false);
  o.freebind = flag("freebind", false);
  o.v6Only = flag("v6Only", true);
  if (obj.Has("backlog") && obj.Get("backlog").IsNumber())
    o.backlog = obj.Get("backlog").As<Napi::Number>().Int32Value();
  return o;
}

// createListener / createSocket: the same socket, listening or not. An
// unlistened socket is bound only when a source address or port was asked for.
Napi::Value MakeSocketFromJs(const Napi::CallbackInfo& info, bool listening) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) {
    Napi::TypeError::New(env, "expected an options object").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  SocketOptions o = ParseOptions(info[0].As<Napi::Object>());
  SysError error{0, ""};
  int fd = MakeSocket(o, listening, listening || !o.address.empty() || o.port != 0, &error);
  if (fd < 0) {
    ThrowSysError(env, error);
    return env.Undefined();
  }
  return Napi::Number::New(env, fd);
}

Napi::Value CreateListener(const Napi::CallbackInfo& info) { return MakeSocketFromJs(info, true); }

Napi::Value CreateSocket(const Napi::CallbackInfo& info) { return MakeSocketFromJs(info, false); }

Napi::Value OriginalDst(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "originalDst(fd) needs a file descriptor").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  sockaddr_storage local;
  socklen_t localLen = sizeof(local);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &localLen) != 0) {
    ThrowSysError(env, {errno, "reading local address of fd " + std::to_string(fd)});
    return env.Undefined();
  }
  char text[INET6_ADDRSTRLEN] = {0};
  Napi::Object result = Napi::Object::New(env);
  if (local.ss_family == AF_INET6) {
    sockaddr_in6 dst;
    socklen_t len = sizeof(dst);
    if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &dst, &len) != 0) {
      ThrowSysError(env, {errno, "reading IP6T_SO_ORIGINAL_DST"});
      return env.Undefined();
    }
    inet_ntop(AF_INET6, &dst.sin6_addr, text, sizeof(text));
    result.Set("family", Napi::Number::New(env, 6));
    result.Set("port", Napi::Number::New(env, ntohs(dst.sin6_port)));
  } else {
    sockaddr_in dst;
    socklen_t len = sizeof(dst);
    if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst, &len) != 0) {
      ThrowSysError(env, {errno, "reading SO_ORIGINAL_DST"});
      return env.Undefined();
    }
    inet_ntop(AF_INET, &dst.sin_addr, text, sizeof(text));
    result.Set("family", Napi::Number::New(env, 4));
    result.Set("port", Napi::Number::New(env, ntohs(dst.sin_port)));
  }
  result.Set("address", Napi::String::New(env, text));
  return result;
}

Napi::Value NetnsInode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  // The current thread's netns identity: lets tests prove the thread came back.
  struct stat st;
  if (stat("/proc/thread-self/ns/net", &st) != 0) {
    ThrowSysError(env, {errno, "stat /proc/thread-self/ns/net"});
    return env.Undefined();
  }
  return Napi::Number::New(env, static_cast<double>(st.st_ino));
}

// The process on the other end of a connected unix socket (SO_PEERCRED): the
// agent's CNI endpoint answers only root, whatever the socket file's mode.
Napi::Value PeerCredentials(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "peerCredentials(fd) needs a file descriptor").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  ucred cred;
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    ThrowSysError(env, {errno, "reading SO_PEERCRED of fd " + std::to_string(fd)});
    return env.Undefined();
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("pid", Napi::Number::New(env, cred.pid));
  result.Set("uid", Napi::Number::New(env, cred.uid));
  result.Set("gid", Napi::Number::New(env, cred.gid));
  return result;
}

// The global-scope addresses of a netns (what `ip -j addr show` lists with
// scope global, minus addresses that failed duplicate detection), read over
// rtnetlink from inside it: netns discovery asks this of every namespace on
// the node, and a process per namespace made a scan of 250 take seconds.
bool DumpGlobalAddresses(std::vector<std::string>* out, SysError* error) {
  Fd nl(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (nl.get() < 0) {
    *error = {errno, "opening rtnetlink socket"};
    return false;
  }
  struct {
    nlmsghdr nh;
    ifaddrmsg ifa;
  } req{};
  req.nh.nlmsg_len = sizeof(req);
  req.nh.nlmsg_type = RTM_GETADDR;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.nh.nlmsg_seq = 1;
  req.ifa.ifa_family = AF_UNSPEC;
  if (send(nl.get(), &req, sizeof(req), 0) < 0) {
    *error = {errno, "sending RTM_GETADDR"};
    return false;
  }
  std::vector<char> buf(32768);
  for (;;) {
    ssize_t n = recv(nl.get(), buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      *error = {errno, "reading RTM_GETADDR answer"};
      return false;
    }
    int len = static_cast<int>(n);
    for (nlmsghdr* nh = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(nh, len); nh = NLMSG_NEXT(nh, len)) {
      if (nh->nlmsg_type == NLMSG_DONE) return true;
      if (nh->nlmsg_type == NLMSG_ERROR) {
        *error = {-reinterpret_cast<nlmsgerr*>(NLMSG_DATA(nh))->error, "RTM_GETADDR"};
        return false;
      }
      if (nh->nlmsg_type != RTM_NEWADDR) continue;
      ifaddrmsg* ifa = reinterpret_cast<ifaddrmsg*>(NLMSG_DATA(nh));
      if (ifa->ifa_scope != RT_SCOPE_UNIVERSE || (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6)) continue;
      uint32_t flags = ifa->ifa_flags;
      const void* local = nullptr;
      const void* address = nullptr;
      int alen = static_cast<int>(IFA_PAYLOAD(nh));
      for (rtattr* rta = IFA_RTA(ifa); RTA_OK(rta, alen); rta = RTA_NEXT(rta, alen)) {
        if (rta->rta_type == IFA_LOCAL) local = RTA_DATA(rta);
        if (rta->rta_type == IFA_ADDRESS) address = RTA_DATA(rta);
        if (rta->rta_type == IFA_FLAGS) flags = *static_cast<uint32_t*>(RTA_DATA(rta));
      }
      if ((flags & IFA_F_DADFAILED) != 0) continue;
      // IFA_LOCAL is the address itself; IFA_ADDRESS is the peer on point-to-point links (as `ip` reads them).
      const void* ip = local != nullptr ? local : address;
      if (ip == nullptr) continue;
      char text[INET6_ADDRSTRLEN] = {0};
      inet_ntop(ifa->ifa_family, ip, text, sizeof(text));
      out->push_back(text);
    }
  }
}

Napi::Value NetnsAddresses(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "netnsAddresses(path) needs a netns path").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::vector<std::string> addresses;
  SysError error{0, ""};
  bool ok;
  {
    NetnsGuard guard;
    ok = guard.Enter(info[0].As<Napi::String>().Utf8Value(), &error) && DumpGlobalAddresses(&addresses, &error);
  }
  if (!ok) {
    ThrowSysError(env, error);
    return env.Undefined();
  }
  Napi::Array result = Napi::Array::New(env, addresses.size());
  for (size_t i = 0; i < addresses.size(); i++) result.Set(static_cast<uint32_t>(i), Napi::String::New(env, addresses[i]));
  return result;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("peerCredentials", Napi::Function::New(env, PeerCredentials));
  exports.Set("netnsAddresses", Napi::Function::New(env, NetnsAddresses));
  exports.Set("createListener", Napi::Function::New(env, CreateListener));
  exports.Set("createSocket", Napi::Function::New(env, CreateSocket));
  exports.Set("originalDst", Napi::Function::New(env, OriginalDst));
  exports.Set("threadNetnsInode", Napi::Function::New(env, NetnsInode));
  warren::InitDataplane(env, exports);
  InitNetnsRoute(env, exports);
  InitNetnsNft(env, exports);
  InitFdPassing(env, exports);
  InitCHeap(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(warren_native, Init)
