#include "c_heap.h"

#include <malloc.h>

#include <climits>
#include <cstdint>

namespace warren {
namespace {

// glibc keeps the memory freed in its arenas (one per thread that allocates: the data path's
// workers, libuv's pool, V8's platform threads) for reuse; free chunks amid live ones are
// never given back by itself. malloc_trim(0) releases every whole free page of every arena
// (madvise), without moving anything.
Napi::Value TrimHeap(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), malloc_trim(0) == 1); }

// glibc gives an arena's top (its free end) back only once it exceeds M_TRIM_THRESHOLD, and
// malloc_trim never touches the tops of the threads' arenas; left dynamic, the threshold rises
// to twice the largest mmapped block freed so far (up to 64 MiB), so each arena could keep that
// much. Setting it fixes it (and the mmap threshold where it stands, 128 KiB unless changed).
Napi::Value BoundHeapRetention(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t bytes = info.Length() < 1 || !info[0].IsNumber() ? 0 : info[0].As<Napi::Number>().Int64Value();
  if (bytes <= 0 || bytes > INT_MAX) {
    Napi::TypeError::New(env, "boundHeapRetention(trimThresholdBytes) needs a byte count from 1 to INT_MAX").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Boolean::New(env, mallopt(M_TRIM_THRESHOLD, static_cast<int>(bytes)) == 1);
}

// mallinfo2 sums every arena: what is allocated and not yet freed (the growth a leak makes)
// apart from what glibc holds free (which a trim returns, resident or not).
Napi::Value CHeapStats(const Napi::CallbackInfo& info) {
  const struct mallinfo2 m = mallinfo2();
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("inUseBytes", Napi::Number::New(env, static_cast<double>(m.uordblks + m.hblkhd)));
  out.Set("mmappedBytes", Napi::Number::New(env, static_cast<double>(m.hblkhd)));
  out.Set("freeBytes", Napi::Number::New(env, static_cast<double>(m.fordblks)));
  out.Set("arenaBytes", Napi::Number::New(env, static_cast<double>(m.arena)));
  return out;
}

}  // namespace

void InitCHeap(Napi::Env env, Napi::Object exports) {
  exports.Set("trimHeap", Napi::Function::New(env, TrimHeap));
  exports.Set("cHeapStats", Napi::Function::New(env, CHeapStats));
  exports.Set("boundHeapRetention", Napi::Function::New(env, BoundHeapRetention));
}

}  // namespace warren
