// The C heap (glibc malloc): its free pages given back, its figures read (c_heap.cc).
#pragma once

#include <napi.h>

namespace warren {

void InitCHeap(Napi::Env env, Napi::Object exports);

}  // namespace warren
