// A pod's nftables ruleset applied from inside its netns through libnftables
// (docs/architecture.md §2): the same text `nft -f -` reads, parsed and sent
// by the library nft itself is built on, as one netlink transaction, on a
// libuv worker thread that setns(2)'d into the pod's netns. Enrolling a pod
// used to spawn `nsenter … nft -f -` for this; the process was most of a
// pod's enrollment time.
//
// The library is dlopen()ed on first use, not linked: the addon also serves
// hosts that program through iptables and have no libnftables, and must load
// there. The header (libnftables-dev) only types the symbols looked up.
//
// The netns switch follows netns_socket.h's NetnsGuard: failing to return to
// the agent's own netns aborts.

#include <napi.h>

#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>

#include <mutex>
#include <string>
#include <utility>
#include <vector>

// The header defines _GNU_SOURCE itself; binding.gyp already does.
#pragma push_macro("_GNU_SOURCE")
#undef _GNU_SOURCE
#include <nftables/libnftables.h>
#pragma pop_macro("_GNU_SOURCE")

#include "netns_nft.h"
#include "netns_socket.h"

namespace {

const char* const kLibrary = "libnftables.so.1";

struct Library {
  decltype(&nft_ctx_new) ctxNew = nullptr;
  decltype(&nft_ctx_free) ctxFree = nullptr;
  decltype(&nft_ctx_buffer_output) bufferOutput = nullptr;
  decltype(&nft_ctx_buffer_error) bufferError = nullptr;
  decltype(&nft_ctx_get_error_buffer) errorBuffer = nullptr;
  decltype(&nft_run_cmd_from_buffer) runFromBuffer = nullptr;
  std::string loadError;  // empty: loaded
};

template <typename T>
bool Resolve(void* handle, const char* name, T* out, std::string* error) {
  *out = reinterpret_cast<T>(dlsym(handle, name));
  if (*out == nullptr) *error = std::string("libnftables.so.1 has no ") + name;
  return *out != nullptr;
}

// Loaded once per process; the handle stays open for its life.
const Library& Lib() {
  static Library lib;
  static std::once_flag once;
  std::call_once(once, [] {
    void* handle = dlopen(kLibrary, RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* why = dlerror();
      lib.loadError = why != nullptr ? why : "dlopen failed";
      return;
    }
    std::string& e = lib.loadError;
    (void)(Resolve(handle, "nft_ctx_new", &lib.ctxNew, &e) && Resolve(handle, "nft_ctx_free", &lib.ctxFree, &e) &&
           Resolve(handle, "nft_ctx_buffer_output", &lib.bufferOutput, &e) &&
           Resolve(handle, "nft_ctx_buffer_error", &lib.bufferError, &e) &&
           Resolve(handle, "nft_ctx_get_error_buffer", &lib.errorBuffer, &e) &&
           Resolve(handle, "nft_run_cmd_from_buffer", &lib.runFromBuffer, &e));
  });
  return lib;
}

// Contexts whose script has run, still open. Closing a context's netlink socket waits
// until the kernel has finished the transaction's deletions (the `delete table` of the
// reset, nf_tables' destroy work: an RCU grace period, ~25 ms here), and that wait is
// for all pending deletions at once: closing them in batches (netnsNftRelease) pays it
// once per batch instead of once per pod. An open socket also keeps its netns alive,
// so the caller releases soon (src/redirect/nft-apply.ts).
std::mutex retiredMutex;
std::vector<nft_ctx*> retired;

// Runs one script in the netns at `path` ("" = the agent's own). The context is
// made after setns: its netlink socket belongs to the netns it was opened in.
class NftRun : public Napi::AsyncWorker {
 public:
  NftRun(Napi::Env env, std::string path, std::string script)
      : Napi::AsyncWorker(env, "warren:nft"), deferred_(Napi::Promise::Deferred::New(env)), path_(std::move(path)), script_(std::move(script)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    const Library& lib = Lib();
    if (!lib.loadError.empty()) {
      missing_ = lib.loadError;
      return;
    }
    warren::NetnsGuard guard;
    if (!guard.Enter(path_, &failure_)) return;
    nft_ctx* ctx = lib.ctxNew(NFT_CTX_DEFAULT);
    if (ctx == nullptr) {
      failure_ = {ENOMEM, "creating an nftables context"};
      return;
    }
    // Buffered: the library would otherwise print to the agent's stdout/stderr.
    lib.bufferOutput(ctx);
    lib.bufferError(ctx);
    ran_ = true;
    status_ = lib.runFromBuffer(ctx, script_.c_str());
    const char* text = lib.errorBuffer(ctx);
    if (text != nullptr) errors_ = text;
    std::lock_guard<std::mutex> lock(retiredMutex);
    retired.push_back(ctx);
    retiredCount_ = retired.size();
  }

  // Every outcome is the resolved value, or a rejection carrying errno/operation when the
  // netns could not be entered (netns-socket.ts's nativeError maps it).
  void OnOK() override {
    Napi::Env env = Env();
    if (!missing_.empty()) {
      Napi::Object result = Napi::Object::New(env);
      result.Set("missing", Napi::String::New(env, missing_));
      deferred_.Resolve(result);
      return;
    }
    if (!ran_) {
      deferred_.Reject(warren::SysErrorValue(env, failure_).Value());
      return;
    }
    Napi::Object result = Napi::Object::New(env);
    result.Set("status", Napi::Number::New(env, status_));
    result.Set("errors", Napi::String::New(env, errors_));
    result.Set("retired", Napi::Number::New(env, static_cast<double>(retiredCount_)));
    deferred_.Resolve(result);
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::string path_;
  std::string script_;
  std::string missing_;
  warren::SysError failure_{0, ""};
  bool ran_ = false;
  int status_ = 0;
  std::string errors_;
  size_t retiredCount_ = 0;
};

// Frees every retired context (see `retired`); resolves with how many.
class NftRelease : public Napi::AsyncWorker {
 public:
  explicit NftRelease(Napi::Env env) : Napi::AsyncWorker(env, "warren:nft-release"), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    std::vector<nft_ctx*> batch;
    {
      std::lock_guard<std::mutex> lock(retiredMutex);
      batch.swap(retired);
    }
    for (nft_ctx* ctx : batch) Lib().ctxFree(ctx);
    freed_ = batch.size();
    // A context holds about a megabyte (parser and cache), allocated on whichever worker
    // thread ran its script; glibc keeps freed memory in those threads' arenas, so without
    // a trim 110 enrollments left the agent ~100 MiB larger for good.
    if (freed_ > 0) malloc_trim(0);
  }
  void OnOK() override { deferred_.Resolve(Napi::Number::New(Env(), static_cast<double>(freed_))); }

 private:
  Napi::Promise::Deferred deferred_;
  size_t freed_ = 0;
};

// netnsNft(path, script) → Promise<{ status, errors, retired } | { missing }>; rejects with
// errno/operation when the netns cannot be entered.
Napi::Value NetnsNft(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString()) {
    Napi::TypeError::New(env, "netnsNft(path, script) needs a netns path (\"\" for the caller's) and a script").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto* worker = new NftRun(env, info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::String>().Utf8Value());
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// netnsNftRelease() → Promise<number>: closes the contexts of the scripts run so far.
Napi::Value NetnsNftRelease(const Napi::CallbackInfo& info) {
  auto* worker = new NftRelease(info.Env());
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace

void InitNetnsNft(Napi::Env env, Napi::Object exports) {
  exports.Set("netnsNft", Napi::Function::New(env, NetnsNft));
  exports.Set("netnsNftRelease", Napi::Function::New(env, NetnsNftRelease));
}
