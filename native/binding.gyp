{
  "targets": [
    {
      "target_name": "moat_native",
      "sources": [
        "addon.cc",
        "errors.cc",
        "object.cc",
        "map.cc",
        "map-batches.cc",
        "program.cc",
        "link.cc",
        "ringbuf.cc",
        "rtnl-watch.cc",
        "sockdiag.cc",
        "peercred.cc",
        "sockdiag_list.cc",
        "netns-socket.cc",
        "splice.cc",
        "splice_pair.cc",
        "splice_socket.cc",
        "relay-socket.cc",
        "unix-sndbuf.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_CPP_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED"
      ],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++20", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Wno-missing-field-initializers"],
      "libraries": ["-lbpf", "-lelf", "-lz"]
    }
  ]
}
