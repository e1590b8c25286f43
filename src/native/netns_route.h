// The rtnetlink half of the addon (netns_route.cc), registered by netns_socket.cc's Init.
#pragma once

#include <napi.h>

void InitNetnsRoute(Napi::Env env, Napi::Object exports);
