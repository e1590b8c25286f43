// Listening sockets passed between two agents over a unix socket (SCM_RIGHTS):
// the listener hand-off of an agent upgrade (docs/architecture.md §4, "Agent
// upgrade"). SOCK_SEQPACKET keeps each message and the descriptors sent with it
// together, so a message can never be read with another's descriptors. Every
// call is non-blocking: the TypeScript side polls, and EAGAIN is reported as
// "nothing now" rather than an error.

#include <napi.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "fd_passing.h"
#include "netns_socket.h"

namespace warren {
namespace {

// A pod has at most 6 listeners (3 ports × 2 families); a message carries one pod's.
constexpr size_t kMaxFds = 8;
constexpr size_t kMaxMessage = 16 * 1024;

bool UnixAddress(const std::string& path, sockaddr_un* addr, SysError* error) {
  if (path.empty() || path.size() >= sizeof(addr->sun_path)) {
    *error = {ENAMETOOLONG, "unix socket path " + path};
    return false;
  }
  memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  memcpy(addr->sun_path, path.data(), path.size());
  return true;
}

bool StringArg(const Napi::CallbackInfo& info, size_t i, std::string* out) {
  if (info.Length() <= i || !info[i].IsString()) return false;
  *out = info[i].As<Napi::String>().Utf8Value();
  return true;
}

bool FdArg(const Napi::CallbackInfo& info, size_t i, int* out) {
  if (info.Length() <= i || !info[i].IsNumber()) return false;
  *out = info[i].As<Napi::Number>().Int32Value();
  return *out >= 0;
}

Napi::Value Usage(Napi::Env env, const char* usage) {
  Napi::TypeError::New(env, usage).ThrowAsJavaScriptException();
  return env.Undefined();
}

// seqpacketListen(path): a listening unix SOCK_SEQPACKET socket bound at path (the caller removes a stale file and sets the mode).
Napi::Value SeqpacketListen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  if (!StringArg(info, 0, &path)) return Usage(env, "seqpacketListen(path)");
  sockaddr_un addr;
  SysError error{0, ""};
  if (!UnixAddress(path, &addr, &error)) return ThrowSysError(env, error), env.Undefined();
  Fd fd(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return ThrowSysError(env, {errno, "socket(AF_UNIX, SOCK_SEQPACKET)"}), env.Undefined();
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return ThrowSysError(env, {errno, "bind " + path}), env.Undefined();
  if (listen(fd.get(), 4) != 0) return ThrowSysError(env, {errno, "listen " + path}), env.Undefined();
  return Napi::Number::New(env, fd.release());
}

// seqpacketConnect(path): a connected, non-blocking unix SOCK_SEQPACKET socket.
Napi::Value SeqpacketConnect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  if (!StringArg(info, 0, &path)) return Usage(env, "seqpacketConnect(path)");
  sockaddr_un addr;
  SysError error{0, ""};
  if (!UnixAddress(path, &addr, &error)) return ThrowSysError(env, error), env.Undefined();
  Fd fd(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return ThrowSysError(env, {errno, "socket(AF_UNIX, SOCK_SEQPACKET)"}), env.Undefined();
  // Blocking only for connect(2), which on a unix socket does not wait for the peer's accept.
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return ThrowSysError(env, {errno, "connect " + path}), env.Undefined();
  int flags = fcntl(fd.get(), F_GETFL);
  if (flags < 0 || fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) != 0) return ThrowSysError(env, {errno, "fcntl O_NONBLOCK"}), env.Undefined();
  return Napi::Number::New(env, fd.release());
}

// seqpacketAccept(fd): a connection, or -1 when none is waiting.
Napi::Value SeqpacketAccept(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!FdArg(info, 0, &fd)) return Usage(env, "seqpacketAccept(fd)");
  int c = accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (c < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return ThrowSysError(env, {errno, "accept"}), env.Undefined();
  return Napi::Number::New(env, c);
}

// sendPacket(fd, data: Buffer, fds: number[]): true when sent, false when the socket is full (EAGAIN).
Napi::Value SendPacket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!FdArg(info, 0, &fd) || info.Length() < 3 || !info[1].IsBuffer() || !info[2].IsArray()) return Usage(env, "sendPacket(fd, data, fds)");
  auto data = info[1].As<Napi::Buffer<uint8_t>>();
  auto list = info[2].As<Napi::Array>();
  if (data.Length() == 0 || data.Length() > kMaxMessage || list.Length() > kMaxFds) return Usage(env, "sendPacket: 1..16384 bytes and at most 8 descriptors");
  std::vector<int> fds;
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Value v = list.Get(i);
    if (!v.IsNumber() || v.As<Napi::Number>().Int32Value() < 0) return Usage(env, "sendPacket: descriptors are non-negative integers");
    fds.push_back(v.As<Napi::Number>().Int32Value());
  }
  iovec iov{data.Data(), data.Length()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  if (!fds.empty()) {
    memset(control, 0, sizeof(control));
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Napi::Boolean::New(env, false);
  if (n < 0) return ThrowSysError(env, {errno, "sendmsg"}), env.Undefined();
  return Napi::Boolean::New(env, true);
}

// recvPacket(fd): null when nothing is waiting; { data, fds } otherwise (empty data and no
// descriptors: the peer closed). Descriptors arrive close-on-exec; a message whose
// descriptors did not fit is refused and the ones that did are closed.
Napi::Value RecvPacket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!FdArg(info, 0, &fd)) return Usage(env, "recvPacket(fd)");
  std::vector<uint8_t> buf(kMaxMessage);
  iovec iov{buf.data(), buf.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return env.Null();
  if (n < 0) return ThrowSysError(env, {errno, "recvmsg"}), env.Undefined();
  std::vector<Fd> fds;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) {
      int received;
      memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      fds.emplace_back(received);
    }
  }
  // Truncated: the Fd destructors close whatever did arrive.
  if ((msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) != 0) return ThrowSysError(env, {EMSGSIZE, "recvmsg: message or descriptors truncated"}), env.Undefined();
  Napi::Object result = Napi::Object::New(env);
  result.Set("data", Napi::Buffer<uint8_t>::Copy(env, buf.data(), static_cast<size_t>(n)));
  Napi::Array list = Napi::Array::New(env, fds.size());
  for (size_t i = 0; i < fds.size(); i++) list.Set(static_cast<uint32_t>(i), Napi::Number::New(env, fds[i].release()));
  result.Set("fds", list);
  return result;
}

// listenerInfo(fd): what a received descriptor is, so a hand-off adopts only
// listening TCP sockets on the expected port.
Napi::Value ListenerInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!FdArg(info, 0, &fd)) return Usage(env, "listenerInfo(fd)");
  int domain = 0, type = 0, protocol = 0, listening = 0;
  socklen_t len = sizeof(int);
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) return ThrowSysError(env, {errno, "getsockopt SO_DOMAIN"}), env.Undefined();
  len = sizeof(int);
  getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len);
  len = sizeof(int);
  getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &len);
  len = sizeof(int);
  getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len);
  sockaddr_storage local{};
  socklen_t localLen = sizeof(local);
  int port = -1;
  if ((domain == AF_INET || domain == AF_INET6) && getsockname(fd, reinterpret_cast<sockaddr*>(&local), &localLen) == 0)
    port = ntohs(domain == AF_INET ? reinterpret_cast<sockaddr_in*>(&local)->sin_port : reinterpret_cast<sockaddr_in6*>(&local)->sin6_port);
  Napi::Object result = Napi::Object::New(env);
  result.Set("family", Napi::Number::New(env, domain == AF_INET ? 4 : domain == AF_INET6 ? 6 : 0));
  result.Set("tcp", Napi::Boolean::New(env, type == SOCK_STREAM && protocol == IPPROTO_TCP));
  result.Set("listening", Napi::Boolean::New(env, listening != 0));
  result.Set("port", Napi::Number::New(env, port));
  return result;
}

}  // namespace

void InitFdPassing(Napi::Env env, Napi::Object exports) {
  exports.Set("seqpacketListen", Napi::Function::New(env, SeqpacketListen));
  exports.Set("seqpacketConnect", Napi::Function::New(env, SeqpacketConnect));
  exports.Set("seqpacketAccept", Napi::Function::New(env, SeqpacketAccept));
  exports.Set("sendPacket", Napi::Function::New(env, SendPacket));
  exports.Set("recvPacket", Napi::Function::New(env, RecvPacket));
  exports.Set("listenerInfo", Napi::Function::New(env, ListenerInfo));
}

}  // namespace warren
