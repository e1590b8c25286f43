{
  "variables": {
    # WARREN_SANITIZE=1 npx node-gyp rebuild: ASan + UBSan build of the addon
    # (scripts/sanitizer-env.sh loads it with libasan preloaded).
    "sanitize%": "<!(node -p \"process.env.WARREN_SANITIZE === '1' ? 1 : 0\")"
  },
  "targets": [
    {
      "target_name": "warren_native",
      "sources": [
        "src/native/netns_socket.cc",
        "src/native/fd_passing.cc",
        "src/native/c_heap.cc",
        "src/native/netns_route.cc",
        "src/native/netns_nft.cc",
        "src/native/dataplane/binding.cc",
        "src/native/dataplane/engine.cc",
        "src/native/dataplane/tls.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "_GNU_SOURCE", "OPENSSL_API_COMPAT=0x30000000L", "OPENSSL_NO_DEPRECATED"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra"],
      # netns_nft.cc dlopen()s libnftables (it is not linked: see there).
      "libraries": ["-ldl"],
      "conditions": [
        ["sanitize==1", {
          "cflags_cc": ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g", "-O1"],
          "ldflags": ["-fsanitize=address,undefined"]
        }]
      ]
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
