// BpfLink: an attachment (bpf_link fd, libbpf bpf_link, or a clsact tc filter).
#pragma once

#include <bpf/libbpf.h>
#include <napi.h>

#include <string>

namespace moat {

struct LinkSpec {
  std::string kind;  // "xdp" | "tcx" | "tc" | "cgroup" | "uprobe" | "iter" | "tracing" | "pinned"
  int fd = -1;       // a raw bpf_link fd (xdp, tcx, cgroup, pinned); owned
  struct bpf_link* link = nullptr;  // a libbpf link (uprobe, iter); owned
  // clsact filter (kind "tc"): detached with bpf_tc_detach.
  bool tcFilter = false;
  struct bpf_tc_hook hook{};
  struct bpf_tc_opts tcOpts{};
};

// Wraps `spec` (taking ownership; released on failure) in a new JS BpfLink.
Napi::Object NewBpfLink(Napi::Env env, const LinkSpec& spec);

// Releases what a LinkSpec holds (detaches a tc filter, closes fds); idempotent.
void ReleaseLinkSpec(LinkSpec* spec);

}  // namespace moat
