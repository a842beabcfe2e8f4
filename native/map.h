// BpfMap: a map fd plus its shape; CRUD, batches, iteration, map-in-map, pinning.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

namespace moat {

struct MapSpec {
  int fd = -1;
  std::string name;
  uint32_t type = 0;
  uint32_t keySize = 0;
  uint32_t valueSize = 0;
  uint32_t maxEntries = 0;
  uint32_t flags = 0;
};

// Wraps `spec` (taking ownership of spec.fd, closed on failure) in a new JS BpfMap.
Napi::Object NewBpfMap(Napi::Env env, const MapSpec& spec);

// The spec of a BpfMap argument; throws TypeError if `v` is not one, EBADF if it is closed.
const MapSpec& MapArg(Napi::Env env, const Napi::Value& v, const char* what);

}  // namespace moat
