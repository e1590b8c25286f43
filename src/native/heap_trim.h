// Returning the C heap's free pages to the kernel (heap_trim.cc).
#pragma once

#include <napi.h>

namespace warren {

void InitHeapTrim(Napi::Env env, Napi::Object exports);

}  // namespace warren
