// A pod's policy routing (one fwmark rule, one local default route in a
// table; docs/architecture.md §2), written over rtnetlink from inside the
// pod's netns. Enrolling a pod used to spawn `nsenter … ip -batch` per
// family for these two entries; a setns(2) round trip on this thread and
// two netlink requests cost microseconds instead of a process.
//
// This file only performs the requests and reports each kernel answer
// (errno name, "" for success): which answers mean "already done" is decided
// in src/redirect/policy-routing.ts.
//
// Kept apart from netns_socket.cc (the socket half of the addon) so the two
// change independently; the netns switch below follows the same rule as
// there: failing to return to the agent's own netns aborts.

#include <napi.h>

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fib_rules.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "netns_route.h"
#include "netns_socket.h"

namespace {

// The descriptor and error types the socket helpers use (netns_socket.h).
using Failure = warren::SysError;
using warren::ErrnoName;
using warren::Fd;

// One rtnetlink request with its own buffer for attributes.
struct Request {
  nlmsghdr nh;
  char body[256];
};

void AddU32(Request* req, unsigned short type, uint32_t value) {
  rtattr* rta = reinterpret_cast<rtattr*>(reinterpret_cast<char*>(&req->nh) + NLMSG_ALIGN(req->nh.nlmsg_len));
  rta->rta_type = type;
  rta->rta_len = RTA_LENGTH(sizeof(value));
  memcpy(RTA_DATA(rta), &value, sizeof(value));
  req->nh.nlmsg_len = NLMSG_ALIGN(req->nh.nlmsg_len) + RTA_ALIGN(rta->rta_len);
}

// Sends one request with NLM_F_ACK and returns the kernel's errno (0: done).
bool Exchange(int nl, Request* req, uint32_t seq, int* answer, Failure* failure) {
  req->nh.nlmsg_seq = seq;
  req->nh.nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
  if (send(nl, req, req->nh.nlmsg_len, 0) < 0) {
    *failure = {errno, "sending rtnetlink request"};
    return false;
  }
  char buf[8192];
  for (int reads = 0; reads < 16; reads++) {
    ssize_t n = recv(nl, buf, sizeof(buf), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      *failure = {errno, "reading rtnetlink answer"};
      return false;
    }
    int len = static_cast<int>(n);
    for (nlmsghdr* nh = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(nh, len); nh = NLMSG_NEXT(nh, len)) {
      if (nh->nlmsg_seq != seq || nh->nlmsg_type != NLMSG_ERROR) continue;
      *answer = -reinterpret_cast<nlmsgerr*>(NLMSG_DATA(nh))->error;
      return true;
    }
  }
  *failure = {EPROTO, "no rtnetlink acknowledgement"};
  return false;
}

struct Routing {
  bool apply;
  int family;
  uint32_t mark;
  uint32_t mask;
  uint32_t pref;
  uint32_t table;
};

// `ip rule add|del fwmark MARK/MASK pref PREF lookup TABLE`
void RuleRequest(const Routing& r, Request* req) {
  memset(req, 0, sizeof(*req));
  req->nh.nlmsg_len = NLMSG_LENGTH(sizeof(fib_rule_hdr));
  req->nh.nlmsg_type = r.apply ? RTM_NEWRULE : RTM_DELRULE;
  // EXCL: without it the kernel adds a second identical rule instead of answering EEXIST.
  req->nh.nlmsg_flags = r.apply ? NLM_F_CREATE | NLM_F_EXCL : 0;
  fib_rule_hdr* frh = static_cast<fib_rule_hdr*>(NLMSG_DATA(&req->nh));
  frh->family = static_cast<uint8_t>(r.family);
  frh->action = FR_ACT_TO_TBL;
  frh->table = r.table < 256 ? static_cast<uint8_t>(r.table) : static_cast<uint8_t>(RT_TABLE_UNSPEC);
  AddU32(req, FRA_FWMARK, r.mark);
  AddU32(req, FRA_FWMASK, r.mask);
  AddU32(req, FRA_PRIORITY, r.pref);
  AddU32(req, FRA_TABLE, r.table);
}

// `ip route replace|del local 0.0.0.0/0 (::/0) dev lo table TABLE`
void RouteRequest(const Routing& r, int lo, Request* req) {
  memset(req, 0, sizeof(*req));
  req->nh.nlmsg_len = NLMSG_LENGTH(sizeof(rtmsg));
  req->nh.nlmsg_type = r.apply ? RTM_NEWROUTE : RTM_DELROUTE;
  req->nh.nlmsg_flags = r.apply ? NLM_F_CREATE | NLM_F_REPLACE : 0;
  rtmsg* rtm = static_cast<rtmsg*>(NLMSG_DATA(&req->nh));
  rtm->rtm_family = static_cast<unsigned char>(r.family);
  rtm->rtm_table = r.table < 256 ? static_cast<unsigned char>(r.table) : static_cast<unsigned char>(RT_TABLE_UNSPEC);
  rtm->rtm_protocol = r.apply ? RTPROT_BOOT : 0;
  rtm->rtm_scope = r.apply ? RT_SCOPE_HOST : RT_SCOPE_NOWHERE;
  rtm->rtm_type = RTN_LOCAL;
  AddU32(req, RTA_TABLE, r.table);
  AddU32(req, RTA_OIF, static_cast<uint32_t>(lo));
}

// Runs with the thread already in the pod's netns.
bool WriteRouting(const Routing& r, int* ruleAnswer, int* routeAnswer, Failure* failure) {
  Fd nl(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (nl.get() < 0) {
    *failure = {errno, "opening rtnetlink socket"};
    return false;
  }
  // if_nametoindex opens its socket in this thread's netns: the pod's lo.
  int lo = static_cast<int>(if_nametoindex("lo"));
  if (lo == 0) {
    *failure = {errno, "finding lo in the netns"};
    return false;
  }
  Request req;
  RuleRequest(r, &req);
  if (!Exchange(nl.get(), &req, 1, ruleAnswer, failure)) return false;
  RouteRequest(r, lo, &req);
  return Exchange(nl.get(), &req, 2, routeAnswer, failure);
}

bool InNetns(const std::string& path, const Routing& r, int* ruleAnswer, int* routeAnswer, Failure* failure) {
  if (path.empty()) {
    *failure = {EINVAL, "a pod's netns path is required"};
    return false;
  }
  warren::NetnsGuard guard;
  if (!guard.Enter(path, failure)) return false;
  return WriteRouting(r, ruleAnswer, routeAnswer, failure);
}

uint32_t U32(const Napi::Object& o, const char* name) { return o.Get(name).As<Napi::Number>().Uint32Value(); }

// netnsPolicyRouting(path, { apply, family: 4|6, mark, mask, pref, table }) → { rule, route }:
// each the kernel's answer as an errno name, "" when it succeeded.
Napi::Value NetnsPolicyRouting(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsObject()) {
    Napi::TypeError::New(env, "netnsPolicyRouting(path, options) needs a netns path and options").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object o = info[1].As<Napi::Object>();
  Routing r{o.Get("apply").ToBoolean().Value(), U32(o, "family") == 6 ? AF_INET6 : AF_INET, U32(o, "mark"), U32(o, "mask"), U32(o, "pref"), U32(o, "table")};
  int ruleAnswer = 0;
  int routeAnswer = 0;
  Failure failure{0, ""};
  if (!InNetns(info[0].As<Napi::String>().Utf8Value(), r, &ruleAnswer, &routeAnswer, &failure)) {
    std::string name = ErrnoName(failure.err);
    Napi::Error error = Napi::Error::New(env, name + " " + failure.operation);
    error.Set("errno", Napi::String::New(env, name));
    error.Set("operation", Napi::String::New(env, failure.operation));
    error.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("rule", Napi::String::New(env, ErrnoName(ruleAnswer)));
  result.Set("route", Napi::String::New(env, ErrnoName(routeAnswer)));
  return result;
}

}  // namespace

void InitNetnsRoute(Napi::Env env, Napi::Object exports) {
  exports.Set("netnsPolicyRouting", Napi::Function::New(env, NetnsPolicyRouting));
}
