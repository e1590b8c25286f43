#include "heap_trim.h"

#include <malloc.h>

namespace warren {
namespace {

// glibc keeps the memory freed in its arenas (one per thread that allocates: the data path's
// workers, libuv's pool, V8's platform threads) for reuse; free chunks amid live ones are
// never given back by itself. malloc_trim(0) releases every whole free page of every arena
// (madvise), without moving anything.
Napi::Value TrimHeap(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), malloc_trim(0) == 1); }

}  // namespace

void InitHeapTrim(Napi::Env env, Napi::Object exports) { exports.Set("trimHeap", Napi::Function::New(env, TrimHeap)); }

}  // namespace warren
