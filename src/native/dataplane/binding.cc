// The JavaScript face of the native data path: `new Dataplane({ threads,
// onWake })`. Workers never touch V8: they queue events and ask for one
// thread-safe call of `onWake`, which drains them with `poll()`.
#include <napi.h>

#include <memory>

#include "../netns_socket.h"
#include "engine.h"

namespace warren {

namespace {

using dp::Decision;
using dp::Engine;
using dp::Event;

std::string Str(const Napi::Object& o, const char* k) {
  Napi::Value v = o.Get(k);
  return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string();
}

int Int(const Napi::Object& o, const char* k) {
  Napi::Value v = o.Get(k);
  return v.IsNumber() ? v.As<Napi::Number>().Int32Value() : 0;
}

uint64_t Id(const Napi::Value& v) {
  return v.IsNumber() ? static_cast<uint64_t>(v.As<Napi::Number>().DoubleValue()) : 0;
}

class Dataplane : public Napi::ObjectWrap<Dataplane> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Dataplane",
                       {InstanceMethod("listen", &Dataplane::Listen), InstanceMethod("unlisten", &Dataplane::Unlisten),
                        InstanceMethod("setIdentity", &Dataplane::SetIdentity),
                        InstanceMethod("dropIdentity", &Dataplane::DropIdentity),
                        InstanceMethod("resolve", &Dataplane::Resolve), InstanceMethod("close", &Dataplane::Close),
                        InstanceMethod("poll", &Dataplane::Poll), InstanceMethod("stats", &Dataplane::GetStats),
                        InstanceMethod("pools", &Dataplane::GetPools),
                        InstanceMethod("ref", &Dataplane::Ref), InstanceMethod("unref", &Dataplane::Unref),
                        InstanceMethod("stop", &Dataplane::Stop)});
  }

  explicit Dataplane(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Dataplane>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) {
      Napi::TypeError::New(env, "new Dataplane({ threads, onWake })").ThrowAsJavaScriptException();
      return;
    }
    Napi::Object o = info[0].As<Napi::Object>();
    if (!o.Get("onWake").IsFunction()) {
      Napi::TypeError::New(env, "onWake must be a function").ThrowAsJavaScriptException();
      return;
    }
    tsfn_ = Napi::ThreadSafeFunction::New(env, o.Get("onWake").As<Napi::Function>(), "warren-dataplane", 0, 1);
    // The agent's other handles keep the process alive; the data path alone must not.
    tsfn_.Unref(env);
    // At environment teardown the workers stop and the TSFN is released even
    // if stop() was never called (Node 26 waits for it at exit otherwise).
    env_ = env;
    napi_add_env_cleanup_hook(env, Teardown, this);
    auto tsfn = std::make_shared<Napi::ThreadSafeFunction>(tsfn_);
    dp::Limits limits;
    if (Int(o, "handshakeTimeoutMs") > 0) limits.handshakeMs = Int(o, "handshakeTimeoutMs");
    if (Int(o, "streamIdleTimeoutMs") > 0) limits.streamIdleMs = Int(o, "streamIdleTimeoutMs");
    if (Int(o, "streamWindow") > 0) limits.streamWindow = static_cast<uint32_t>(Int(o, "streamWindow"));
    engine_ = std::make_unique<Engine>(Int(o, "threads"), limits, [tsfn] { tsfn->NonBlockingCall(CallWake); });
  }

  ~Dataplane() override {
    if (env_ != nullptr) napi_remove_env_cleanup_hook(env_, Teardown, this);
    Shutdown();
  }

  static void Teardown(void* self) {
    auto* d = static_cast<Dataplane*>(self);
    d->env_ = nullptr;  // the hook ran; the destructor must not remove it
    d->Shutdown();
  }

  // Plain N-API, not Function::Call: an exception thrown by onWake stays a
  // JavaScript exception (uncaught there), never a C++ one crossing into
  // the TSFN machinery; at teardown (env gone) nothing is called.
  static void CallWake(Napi::Env env, Napi::Function fn) {
    if (env == nullptr || fn.IsEmpty()) return;
    napi_value result;
    napi_call_function(env, env.Undefined(), fn, 0, nullptr, &result);
  }

 private:
  void Shutdown() {
    if (!engine_) return;
    engine_->Stop();
    engine_.reset();
    tsfn_.Release();
  }

  bool Alive(Napi::Env env) {
    if (engine_) return true;
    Napi::Error::New(env, "the data path is stopped").ThrowAsJavaScriptException();
    return false;
  }

  // listen(id, fd, 'outbound'|'inbound'|'hbone', identity?)
  Napi::Value Listen(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Alive(env)) return env.Undefined();
    if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsString()) {
      Napi::TypeError::New(env, "listen(id, fd, kind, identity?)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    std::string kind = info[2].As<Napi::String>().Utf8Value();
    dp::ListenerKind k = kind == "hbone" ? dp::ListenerKind::Hbone
                         : kind == "inbound" ? dp::ListenerKind::Inbound
                                             : dp::ListenerKind::Outbound;
    std::string identity = info.Length() > 3 && info[3].IsString() ? info[3].As<Napi::String>().Utf8Value() : "";
    engine_->Listen(info[0].As<Napi::Number>().Uint32Value(), info[1].As<Napi::Number>().Int32Value(), k, identity);
    return env.Undefined();
  }

  Napi::Value Unlisten(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (Alive(env) && info.Length() > 0 && info[0].IsNumber()) engine_->Unlisten(info[0].As<Napi::Number>().Uint32Value());
    return env.Undefined();
  }

  // setIdentity(name, keyPem, chainPem, bundlePems[]): throws naming what is wrong, never the key
  Napi::Value SetIdentity(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Alive(env)) return env.Undefined();
    if (info.Length() < 4 || !info[0].IsString() || !info[1].IsString() || !info[2].IsString() || !info[3].IsArray()) {
      Napi::TypeError::New(env, "setIdentity(name, keyPem, chainPem, bundlePems)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    std::string key = info[1].As<Napi::String>().Utf8Value();
    std::vector<std::string> bundle;
    Napi::Array a = info[3].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++)
      if (a.Get(i).IsString()) bundle.push_back(a.Get(i).As<Napi::String>().Utf8Value());
    std::string error;
    auto id = BuildIdentity(key, info[2].As<Napi::String>().Utf8Value(), bundle, &error);
    if (!id) {
      Napi::Error::New(env, error).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    engine_->SetIdentity(info[0].As<Napi::String>().Utf8Value(), std::move(id));
    return env.Undefined();
  }

  Napi::Value DropIdentity(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (Alive(env) && info.Length() > 0 && info[0].IsString()) engine_->DropIdentity(info[0].As<Napi::String>().Utf8Value());
    return env.Undefined();
  }

  // resolve(id, { action, reason?, netns?, mark?, sourceIp?, prefix? (Buffer), ip?, port?, identity?, expected?, authority?, forwarded?, status? })
  Napi::Value Resolve(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Alive(env)) return env.Undefined();
    if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsObject()) {
      Napi::TypeError::New(env, "resolve(id, decision)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Object o = info[1].As<Napi::Object>();
    std::string action = Str(o, "action");
    Decision d;
    d.action = action == "connect" ? Decision::Connect
               : action == "hbone" ? Decision::Hbone
               : action == "reject" ? Decision::Reject
               : action == "admit"  ? Decision::Admit
                                    : Decision::Reset;
    d.reason = Str(o, "reason");
    d.from.netns = Str(o, "netns");
    if (o.Get("mark").IsNumber()) {
      d.from.hasMark = true;
      d.from.mark = o.Get("mark").As<Napi::Number>().Uint32Value();
    }
    std::string source = Str(o, "sourceIp");
    if (!source.empty()) {
      d.from.address = source;
      d.from.transparent = true;
      d.from.freebind = true;
    }
    d.ip = Str(o, "ip");
    d.port = Int(o, "port");
    d.identity = Str(o, "identity");
    d.expected = Str(o, "expected");
    d.authority = Str(o, "authority");
    d.forwarded = Str(o, "forwarded");
    d.status = Int(o, "status");
    Napi::Value prefix = o.Get("prefix");
    if (d.action == Decision::Connect && prefix.IsBuffer()) {
      auto b = prefix.As<Napi::Buffer<char>>();
      if (b.Length() > dp::kMaxPrefix) {
        d.action = Decision::Reset;
        d.reason = "decision prefix over " + std::to_string(dp::kMaxPrefix) + " bytes";
      } else {
        d.prefix.assign(b.Data(), b.Length());
      }
    }
    engine_->Resolve(Id(info[0]), std::move(d));
    return env.Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (Alive(env) && info.Length() > 0)
      engine_->Close(Id(info[0]), info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "closed");
    return env.Undefined();
  }

  Napi::Value Poll(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!engine_) return Napi::Array::New(env, 0);
    std::vector<Event> events = engine_->TakeEvents();
    Napi::Array out = Napi::Array::New(env, events.size());
    for (size_t i = 0; i < events.size(); i++) {
      const Event& e = events[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("id", Napi::Number::New(env, static_cast<double>(e.id)));
      if (e.type == Event::Decide) {
        o.Set("type", "decide");
        o.Set("kind", e.kind);
        o.Set("listener", Napi::Number::New(env, e.listener));
        o.Set("srcIp", e.srcIp);
        o.Set("srcPort", Napi::Number::New(env, e.srcPort));
        if (std::string(e.kind) == "session") {
          // an accepted HBONE connection: its source is all there is yet
        } else if (std::string(e.kind) == "connect") {
          o.Set("peer", e.peer);
          o.Set("method", e.method);
          o.Set("authority", e.authority);
          if (!e.forwarded.empty()) o.Set("forwarded", e.forwarded);
        } else {
          o.Set("dstIp", e.dstIp);
          o.Set("dstPort", Napi::Number::New(env, e.dstPort));
          o.Set("localIp", e.localIp);
          o.Set("localPort", Napi::Number::New(env, e.localPort));
        }
      } else if (e.type == Event::Open) {
        o.Set("type", "open");
      } else {
        o.Set("type", "close");
        o.Set("fromClient", Napi::Number::New(env, static_cast<double>(e.fromClient)));
        o.Set("fromServer", Napi::Number::New(env, static_cast<double>(e.fromServer)));
        o.Set("opened", Napi::Boolean::New(env, e.opened));
        if (e.status != 0) o.Set("status", Napi::Number::New(env, e.status));
        if (!e.error.empty()) o.Set("error", e.error);
        if (e.refusal[0] != '\0') o.Set("refusal", e.refusal);
      }
      out.Set(static_cast<uint32_t>(i), o);
    }
    return out;
  }

  Napi::Value GetStats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    dp::Stats s = engine_ ? engine_->GetStats() : dp::Stats{};
    o.Set("flows", Napi::Number::New(env, static_cast<double>(s.flows)));
    o.Set("sessions", Napi::Number::New(env, static_cast<double>(s.sessions)));
    o.Set("streams", Napi::Number::New(env, static_cast<double>(s.streams)));
    o.Set("buffered", Napi::Number::New(env, static_cast<double>(s.buffered)));
    o.Set("http2Bytes", Napi::Number::New(env, static_cast<double>(s.http2Bytes)));
    return o;
  }

  // pools() → [{ netns, identity, expected, ip, sessions, streams }], one per worker and pool
  // key; the call waits (at most 200 ms) for the workers, which own their pools.
  Napi::Value GetPools(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<dp::PoolStat> pools = engine_ ? engine_->Pools(200) : std::vector<dp::PoolStat>{};
    Napi::Array out = Napi::Array::New(env, pools.size());
    for (size_t i = 0; i < pools.size(); i++) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("netns", pools[i].netns);
      o.Set("identity", pools[i].identity);
      o.Set("expected", pools[i].expected);
      o.Set("ip", pools[i].ip);
      o.Set("sessions", Napi::Number::New(env, static_cast<double>(pools[i].sessions)));
      o.Set("streams", Napi::Number::New(env, static_cast<double>(pools[i].streams)));
      out.Set(static_cast<uint32_t>(i), o);
    }
    return out;
  }

  // Like a net.Server: the process stays up while the workers listen.
  Napi::Value Ref(const Napi::CallbackInfo& info) {
    if (engine_) tsfn_.Ref(info.Env());
    return info.Env().Undefined();
  }

  Napi::Value Unref(const Napi::CallbackInfo& info) {
    if (engine_) tsfn_.Unref(info.Env());
    return info.Env().Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  Napi::ThreadSafeFunction tsfn_;
  std::unique_ptr<Engine> engine_;
  napi_env env_ = nullptr;
};

}  // namespace

void InitDataplane(Napi::Env env, Napi::Object exports) { exports.Set("Dataplane", Dataplane::Define(env)); }

}  // namespace warren
