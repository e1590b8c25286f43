// The libnftables half of the addon (netns_nft.cc), registered by netns_socket.cc's Init.
#pragma once

#include <napi.h>

void InitNetnsNft(Napi::Env env, Napi::Object exports);
