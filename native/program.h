// BpfProgram: a loaded program fd; attach (XDP, TC/tcx, cgroup, uprobe), test run, pin.
#pragma once

#include <bpf/libbpf.h>
#include <napi.h>

#include <cstdint>
#include <memory>
#include <string>

#include "object.h"

namespace moat {

struct ProgramSpec {
  int fd = -1;  // owned (a dup of libbpf's fd)
  std::string name;
  std::string section;
  uint32_t type = 0;
  uint32_t expectedAttachType = 0;
  std::shared_ptr<ObjectHandle> object;
  struct bpf_program* prog = nullptr;  // valid while object->obj is open
};

// Wraps `spec` (taking ownership of spec.fd, closed on failure) in a new JS BpfProgram.
Napi::Object NewBpfProgram(Napi::Env env, const ProgramSpec& spec);

}  // namespace moat
