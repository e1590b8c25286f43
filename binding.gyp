{
  "targets": [
    {
      "target_name": "warren_native",
      "sources": ["src/native/netns_socket.cc", "src/native/netns_route.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "_GNU_SOURCE"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra"]
    },
    {
      "target_name": "warren-cni",
      "type": "executable",
      "sources": ["src/cni/warren-cni.c"],
      "cflags": ["-std=c11", "-O2", "-Wall", "-Wextra"],
      "ldflags": ["-static", "-s"]
    }
  ]
}
