// BpfObject: one libbpf bpf_object (open -> tweak -> load -> close).
#pragma once

#include <bpf/libbpf.h>

namespace moat {

// Shared by a BpfObject and the BpfPrograms taken from it: programs need the bpf_program
// pointer for libbpf attach helpers (uprobe), which is only valid until the object closes.
struct ObjectHandle {
  struct bpf_object* obj = nullptr;
};

}  // namespace moat
