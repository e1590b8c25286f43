// Descriptor passing over unix SOCK_SEQPACKET sockets (fd_passing.cc).
#pragma once

#include <napi.h>

namespace warren {

void InitFdPassing(Napi::Env env, Napi::Object exports);

}  // namespace warren
