// updateBatches: several maps' batch updates at once, each on a thread of its own. An update of a
// map-in-map returns only after an RCU grace period (about 12 ms on these machines); a policy
// swap writes some twenty outer maps, and their grace periods waited side by side cost about
// one instead of twenty.
#include <bpf/bpf.h>
#include <linux/bpf.h>

#include <string>
#include <thread>
#include <vector>

#include "addon.h"
#include "args.h"
#include "errors.h"
#include "map.h"

namespace moat {

namespace {

struct Batch {
  int fd;
  std::string name;
  const uint8_t* keys;
  const uint8_t* values;
  __u32 count;
  __u32 done = 0;
  int rc = 0;
};

bool IsPerCpu(uint32_t type) {
  return type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_ARRAY ||
         type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

void CheckAtLeast(Napi::Env env, const char* what, size_t got, size_t want,
                  const std::string& map) {
  if (got < want)
    ThrowErrno(env, "bpf_map_update_batch", EINVAL,
               std::string(what) + " is " + std::to_string(got) + " bytes, needs at least " +
                   std::to_string(want) + " for map '" + map + "'");
}

}  // namespace

// updateBatches([{ map, keys, values, count }]): every batch written, or an error naming the
// first map that failed (the others may be written: the caller's slot is idle, so it retries or
// drops the whole slot). Returns undefined.
Napi::Value UpdateBatches(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* op = "bpf_map_update_batch";
  Napi::Value listV = Arg(info, 0);
  if (!listV.IsArray()) throw Napi::TypeError::New(env, "updateBatches: expected an array");
  Napi::Array list = listV.As<Napi::Array>();
  std::vector<Batch> batches;
  // the Buffers stay referenced by `list` (an argument) until this call returns
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Value item = list.Get(i);
    const MapSpec& spec = MapArg(env, OptField(item, "map"), "map");
    if (IsPerCpu(spec.type))
      throw Napi::TypeError::New(env, "updateBatches: per-CPU map '" + spec.name + "'");
    Napi::Buffer<uint8_t> keys = BufferArg(OptField(item, "keys"), "keys");
    Napi::Buffer<uint8_t> values = BufferArg(OptField(item, "values"), "values");
    uint32_t count = U32Arg(OptField(item, "count"), "count");
    CheckAtLeast(env, "keys", keys.Length(), static_cast<size_t>(count) * spec.keySize, spec.name);
    CheckAtLeast(env, "values", values.Length(), static_cast<size_t>(count) * spec.valueSize,
                 spec.name);
    if (count > 0) batches.push_back({spec.fd, spec.name, keys.Data(), values.Data(), count});
  }
  std::vector<std::thread> threads;
  threads.reserve(batches.size());
  for (Batch& b : batches) {
    threads.emplace_back([&b] {
      auto opts = ZeroOpts<bpf_map_batch_opts>();
      b.done = b.count;
      b.rc = bpf_map_update_batch(b.fd, b.keys, b.values, &b.done, &opts);
    });
  }
  for (std::thread& t : threads) t.join();
  for (const Batch& b : batches) {
    if (b.rc < 0)
      ThrowErrno(env, op, -b.rc,
                 "map '" + b.name + "' after " + std::to_string(b.done) + " of " +
                     std::to_string(b.count) + " entries");
  }
  return env.Undefined();
}

}  // namespace moat
