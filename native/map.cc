// BpfMap: every map operation on one fd; returns Buffers the kernel filled directly.
#include "map.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <vector>

#include "addon.h"
#include "args.h"
#include "errors.h"

namespace moat {

namespace {

bool IsPerCpu(uint32_t type) {
  switch (type) {
    case BPF_MAP_TYPE_PERCPU_HASH:
    case BPF_MAP_TYPE_PERCPU_ARRAY:
    case BPF_MAP_TYPE_LRU_PERCPU_HASH:
    case BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE:
      return true;
    default:
      return false;
  }
}

// Reads a map's shape from the kernel (for maps not opened through a libbpf object).
int QuerySpec(int fd, MapSpec* spec) {
  struct bpf_map_info info;
  std::memset(&info, 0, sizeof(info));
  __u32 len = sizeof(info);
  int rc = bpf_obj_get_info_by_fd(fd, &info, &len);
  if (rc < 0) return -errno;
  spec->fd = fd;
  spec->name = info.name;
  spec->type = info.type;
  spec->keySize = info.key_size;
  spec->valueSize = info.value_size;
  spec->maxEntries = info.max_entries;
  spec->flags = info.map_flags;
  return 0;
}

class BpfMap : public Napi::ObjectWrap<BpfMap>, public Closable {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "BpfMap",
                       {
                           StaticMethod<&BpfMap::Create>("create"),
                           StaticMethod<&BpfMap::OpenPinned>("openPinned"),
                           StaticMethod<&BpfMap::OpenById>("openById"),
                           InstanceAccessor<&BpfMap::GetName>("name"),
                           InstanceAccessor<&BpfMap::GetFd>("fd"),
                           InstanceAccessor<&BpfMap::GetType>("type"),
                           InstanceAccessor<&BpfMap::GetKeySize>("keySize"),
                           InstanceAccessor<&BpfMap::GetValueSize>("valueSize"),
                           InstanceAccessor<&BpfMap::GetMaxEntries>("maxEntries"),
                           InstanceAccessor<&BpfMap::GetValuesPerKey>("valuesPerKey"),
                           InstanceAccessor<&BpfMap::GetValueBufferSize>("valueBufferSize"),
                           InstanceMethod<&BpfMap::Id>("id"),
                           InstanceMethod<&BpfMap::Lookup>("lookup"),
                           InstanceMethod<&BpfMap::LookupInto>("lookupInto"),
                           InstanceMethod<&BpfMap::LookupAndDelete>("lookupAndDelete"),
                           InstanceMethod<&BpfMap::Update>("update"),
                           InstanceMethod<&BpfMap::Delete>("delete"),
                           InstanceMethod<&BpfMap::NextKey>("nextKey"),
                           InstanceMethod<&BpfMap::UpdateBatch>("updateBatch"),
                           InstanceMethod<&BpfMap::WriteMapped>("writeMapped"),
                           InstanceMethod<&BpfMap::DeleteBatch>("deleteBatch"),
                           InstanceMethod<&BpfMap::LookupBatch>("lookupBatch"),
                           InstanceMethod<&BpfMap::LookupAndDeleteBatch>("lookupAndDeleteBatch"),
                           InstanceMethod<&BpfMap::SetInner>("setInner"),
                           InstanceMethod<&BpfMap::Pin>("pin"),
                           InstanceMethod<&BpfMap::Unpin>("unpin"),
                           InstanceMethod<&BpfMap::Freeze>("freeze"),
                           InstanceMethod<&BpfMap::Close>("close"),
                       });
  }

  explicit BpfMap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfMap>(info) {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw Napi::TypeError::New(info.Env(),
                                 "BpfMap has no public constructor: use BpfMap.create, "
                                 "BpfMap.openPinned or BpfObject.map");
    spec_ = *info[0].As<Napi::External<MapSpec>>().Data();
    valuesPerKey_ = 1;
    valueBufferSize_ = spec_.valueSize;
    if (IsPerCpu(spec_.type)) {
      LogCapture capture;
      int n = libbpf_num_possible_cpus();
      if (n < 0) ThrowErrno(info.Env(), "libbpf_num_possible_cpus", -n, "", &capture);
      valuesPerKey_ = static_cast<uint32_t>(n);
      valueBufferSize_ = static_cast<size_t>(n) * ((spec_.valueSize + 7u) & ~7u);
    }
    registry_ = Data(info.Env()).registry;
    registry_->Add(this);
  }

  ~BpfMap() override {
    Release();
    if (registry_) registry_->Remove(this);
  }

  void Release() override {
    if (spec_.fd >= 0) {
      close(spec_.fd);
      spec_.fd = -1;
    }
  }

  const MapSpec& spec() const { return spec_; }

 private:
  // ---- construction ----

  static Napi::Value Create(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Value opts = Arg(info, 0);
    if (!opts.IsObject()) throw Napi::TypeError::New(env, "BpfMap.create expects options");
    uint32_t type = U32Arg(OptField(opts, "type"), "type");
    uint32_t keySize = U32Arg(OptField(opts, "keySize"), "keySize");
    uint32_t valueSize = U32Arg(OptField(opts, "valueSize"), "valueSize");
    uint32_t maxEntries = U32Arg(OptField(opts, "maxEntries"), "maxEntries");
    Napi::Value nameV = OptField(opts, "name");
    std::string name = IsNullish(nameV) ? "" : StringArg(nameV, "name");
    auto createOpts = ZeroOpts<bpf_map_create_opts>();
    createOpts.map_flags = OptU32(opts, "flags", 0);
    Napi::Value inner = OptField(opts, "innerMap");
    if (!IsNullish(inner)) createOpts.inner_map_fd = MapArg(env, inner, "innerMap").fd;

    LogCapture capture;
    int fd =
        bpf_map_create(static_cast<enum bpf_map_type>(type), name.empty() ? nullptr : name.c_str(),
                       keySize, valueSize, maxEntries, &createOpts);
    if (fd < 0) ThrowErrno(env, "bpf_map_create", -fd, name, &capture);
    MapSpec spec;
    int rc = QuerySpec(fd, &spec);
    if (rc < 0) {
      close(fd);
      ThrowErrno(env, "bpf_obj_get_info_by_fd", -rc, name);
    }
    if (!name.empty()) spec.name = name;
    return NewBpfMap(env, spec);
  }

  static Napi::Value OpenPinned(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string path = StringArg(Arg(info, 0), "path");
    LogCapture capture;
    int fd = bpf_obj_get(path.c_str());
    if (fd < 0) ThrowErrno(env, "bpf_obj_get", -fd, path, &capture);
    MapSpec spec;
    int rc = QuerySpec(fd, &spec);
    if (rc < 0) {
      close(fd);
      ThrowErrno(env, "bpf_obj_get_info_by_fd", -rc, path);
    }
    return NewBpfMap(env, spec);
  }

  // a map by its id: the inner map an array-of-maps holds (its lookup gives ids)
  static Napi::Value OpenById(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Value arg = Arg(info, 0);
    if (!arg.IsNumber()) throw Napi::TypeError::New(env, "id must be a number");
    uint32_t id = arg.As<Napi::Number>().Uint32Value();
    LogCapture capture;
    int fd = bpf_map_get_fd_by_id(id);
    if (fd < 0) ThrowErrno(env, "bpf_map_get_fd_by_id", -fd, std::to_string(id), &capture);
    MapSpec spec;
    int rc = QuerySpec(fd, &spec);
    if (rc < 0) {
      close(fd);
      ThrowErrno(env, "bpf_obj_get_info_by_fd", -rc, std::to_string(id));
    }
    return NewBpfMap(env, spec);
  }

  // ---- accessors ----

  Napi::Value GetName(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), spec_.name);
  }
  Napi::Value GetFd(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), spec_.fd);
  }
  Napi::Value GetType(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), spec_.type);
  }
  Napi::Value GetKeySize(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), spec_.keySize);
  }
  Napi::Value GetValueSize(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), spec_.valueSize);
  }
  Napi::Value GetMaxEntries(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), spec_.maxEntries);
  }
  Napi::Value GetValuesPerKey(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), valuesPerKey_);
  }
  Napi::Value GetValueBufferSize(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(valueBufferSize_));
  }

  // ---- checks ----

  int Fd(Napi::Env env, const char* op) {
    if (spec_.fd < 0) ThrowErrno(env, op, EBADF, "map '" + spec_.name + "' is closed");
    return spec_.fd;
  }

  // A key argument as a pointer the kernel may read keySize bytes from (null allowed for
  // key-less maps such as queues and stacks).
  const void* KeyPtr(Napi::Env env, const Napi::Value& v, const char* op, bool allowNull) {
    if (IsNullish(v)) {
      if (allowNull) return nullptr;
      throw Napi::TypeError::New(env, "key must be a Buffer");
    }
    Napi::Buffer<uint8_t> key = BufferArg(v, "key");
    if (key.Length() != spec_.keySize)
      ThrowErrno(env, op, EINVAL,
                 "key is " + std::to_string(key.Length()) + " bytes, map '" + spec_.name +
                     "' has key_size " + std::to_string(spec_.keySize));
    return key.Data();
  }

  void CheckLength(Napi::Env env, const char* op, const char* what, size_t got, size_t want) {
    if (got != want)
      ThrowErrno(env, op, EINVAL,
                 std::string(what) + " is " + std::to_string(got) + " bytes, map '" + spec_.name +
                     "' needs " + std::to_string(want));
  }

  void CheckAtLeast(Napi::Env env, const char* op, const char* what, size_t got, size_t want) {
    if (got < want)
      ThrowErrno(env, op, EINVAL,
                 std::string(what) + " is " + std::to_string(got) + " bytes, needs at least " +
                     std::to_string(want) + " for map '" + spec_.name + "'");
  }

  size_t CursorSize() const { return std::max<size_t>(spec_.keySize, 8); }

  // ---- operations ----

  Napi::Value Id(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = Fd(env, "bpf_obj_get_info_by_fd");
    struct bpf_map_info mi;
    std::memset(&mi, 0, sizeof(mi));
    __u32 len = sizeof(mi);
    if (bpf_obj_get_info_by_fd(fd, &mi, &len) < 0)
      ThrowErrno(env, "bpf_obj_get_info_by_fd", errno, spec_.name);
    return Napi::Number::New(env, mi.id);
  }

  Napi::Value Lookup(const Napi::CallbackInfo& info) { return LookupImpl(info, false); }
  Napi::Value LookupAndDelete(const Napi::CallbackInfo& info) { return LookupImpl(info, true); }

  // lookup() into the caller's buffer: no buffer is made per call (a hot path's lookups, most of
  // them misses, paid more for the new buffer than for the system call)
  Napi::Value LookupInto(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* op = "bpf_map_lookup_elem";
    int fd = Fd(env, op);
    const void* key = KeyPtr(env, Arg(info, 0), op, spec_.keySize == 0);
    Napi::Buffer<uint8_t> out = BufferArg(Arg(info, 1), "out");
    CheckAtLeast(env, op, "out", out.Length(), valueBufferSize_);
    int rc = bpf_map_lookup_elem(fd, key, out.Data());
    if (rc < 0) {
      if (-rc == ENOENT) return Napi::Boolean::New(env, false);
      ThrowErrno(env, op, -rc, "map '" + spec_.name + "'");
    }
    return Napi::Boolean::New(env, true);
  }

  Napi::Value LookupImpl(const Napi::CallbackInfo& info, bool andDelete) {
    Napi::Env env = info.Env();
    const char* op = andDelete ? "bpf_map_lookup_and_delete_elem" : "bpf_map_lookup_elem";
    int fd = Fd(env, op);
    const void* key = KeyPtr(env, Arg(info, 0), op, spec_.keySize == 0);
    auto value = Napi::Buffer<uint8_t>::New(env, valueBufferSize_);
    int rc = andDelete ? bpf_map_lookup_and_delete_elem(fd, key, value.Data())
                       : bpf_map_lookup_elem(fd, key, value.Data());
    if (rc < 0) {
      if (-rc == ENOENT) return env.Null();
      ThrowErrno(env, op, -rc, "map '" + spec_.name + "'");
    }
    return value;
  }

  Napi::Value Update(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* op = "bpf_map_update_elem";
    int fd = Fd(env, op);
    const void* key = KeyPtr(env, Arg(info, 0), op, spec_.keySize == 0);
    Napi::Buffer<uint8_t> value = BufferArg(Arg(info, 1), "value");
    CheckLength(env, op, "value", value.Length(), valueBufferSize_);
    uint32_t flags = IsNullish(Arg(info, 2)) ? 0 : U32Arg(info[2], "flags");
    int rc = bpf_map_update_elem(fd, key, value.Data(), flags);
    if (rc < 0) ThrowErrno(env, op, -rc, "map '" + spec_.name + "'");
    return env.Undefined();
  }

  Napi::Value Delete(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* op = "bpf_map_delete_elem";
    int fd = Fd(env, op);
    const void* key = KeyPtr(env, Arg(info, 0), op, false);
    int rc = bpf_map_delete_elem(fd, key);
    if (rc < 0) {
      if (-rc == ENOENT) return Napi::Boolean::New(env, false);
      ThrowErrno(env, op, -rc, "map '" + spec_.name + "'");
    }
    return Napi::Boolean::New(env, true);
  }

  Napi::Value NextKey(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* op = "bpf_map_get_next_key";
    int fd = Fd(env, op);
    const void* key = KeyPtr(env, Arg(info, 0), op, true);
    auto next = Napi::Buffer<uint8_t>::New(env, spec_.keySize);
    int rc = bpf_map_get_next_key(fd, key, next.Data());
    if (rc < 0) {
      if (-rc == ENOENT) return env.Null();
      ThrowErrno(env, op, -rc, "map '" + spec_.name + "'");
    }
    return next;
  }

  Napi::Value UpdateBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* op = "bpf_map_update_batch";
    int fd = Fd(env, op);
    Napi::Buffer<uint8_t> keys = BufferArg(Arg(info, 0), "keys");
    Napi::Buffer<uint8_t> values = BufferArg(Arg(info, 1), "values");
    uint32_t count = U32Arg(Arg(info, 2), "count");
    CheckAtLeast(env, op, "keys", keys.Length(), static_cast<size_t>(count) * spec_.keySize);
    CheckAtLeast(env, op, "values", values.Length(), static_cast<size_t>(count) * valueBufferSize_);
    auto opts = ZeroOpts<bpf_map_batch_opts>();
    opts.elem_flags = IsNullish(Arg(info, 3)) ? 0 : U32Arg(info[3], "flags");
    if (count == 0) return Napi::Number::New(env, 0);
    __u32 n = count;
    int rc = bpf_map_update_batch(fd, keys.Data(), values.Data(), &n, &opts);
    if (rc < 0)
      ThrowErrno(env, op, -rc,
                 "map '" + spec_.name + "' after " + std::to_string(n) + " of " +
                     std::to_string(count) + " entries");
    return Napi::Number::New(env, n);
  }

  // writeMapped(values, count): entries 0..count-1 of a BPF_F_MMAPABLE array written through a
  // shared mapping of its values, a copy each instead of the syscall's update of one entry at a
  // time. For a map no program reads yet: a program could see an entry half written.
  Napi::Value WriteMapped(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* op = "mmap";
    int fd = Fd(env, op);
    if (spec_.type != BPF_MAP_TYPE_ARRAY || !(spec_.flags & BPF_F_MMAPABLE))
      ThrowErrno(env, op, EINVAL, "map '" + spec_.name + "' is not an mmapable array");
    Napi::Buffer<uint8_t> values = BufferArg(Arg(info, 0), "values");
    uint32_t count = U32Arg(Arg(info, 1), "count");
    CheckAtLeast(env, op, "values", values.Length(), static_cast<size_t>(count) * spec_.valueSize);
    if (count > spec_.maxEntries)
      ThrowErrno(env, op, E2BIG, "map '" + spec_.name + "': more entries than it holds");
    if (count == 0) return Napi::Number::New(env, 0);
    // an array's values are 8-byte aligned, back to back from the mapping's start
    const size_t stride = (spec_.valueSize + 7u) & ~static_cast<size_t>(7u);
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    const size_t length = (stride * spec_.maxEntries + page - 1) / page * page;
    void* at = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (at == MAP_FAILED) ThrowErrno(env, op, errno, "map '" + spec_.name + "'");
    auto* base = static_cast<uint8_t*>(at);
    const uint8_t* from = values.Data();
    const size_t size = spec_.valueSize;
    if (stride == size)
      std::memcpy(base, from, size * count);
    else
      for (uint32_t i = 0; i < count; i++) std::memcpy(base + i * stride, from + i * size, size);
    munmap(at, length);
    return Napi::Number::New(env, count);
  }

  Napi::Value DeleteBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* op = "bpf_map_delete_batch";
    int fd = Fd(env, op);
    Napi::Buffer<uint8_t> keys = BufferArg(Arg(info, 0), "keys");
    uint32_t count = U32Arg(Arg(info, 1), "count");
    CheckAtLeast(env, op, "keys", keys.Length(), static_cast<size_t>(count) * spec_.keySize);
    if (count == 0) return Napi::Number::New(env, 0);
    auto opts = ZeroOpts<bpf_map_batch_opts>();
    __u32 n = count;
    int rc = bpf_map_delete_batch(fd, keys.Data(), &n, &opts);
    // A missing key stops the batch there: report how many were deleted before it.
    if (rc < 0 && -rc != ENOENT)
      ThrowErrno(env, op, -rc,
                 "map '" + spec_.name + "' after " + std::to_string(n) + " of " +
                     std::to_string(count) + " entries");
    return Napi::Number::New(env, n);
  }

  Napi::Value LookupBatch(const Napi::CallbackInfo& info) { return LookupBatchImpl(info, false); }
  Napi::Value LookupAndDeleteBatch(const Napi::CallbackInfo& info) {
    return LookupBatchImpl(info, true);
  }

  Napi::Value LookupBatchImpl(const Napi::CallbackInfo& info, bool andDelete) {
    Napi::Env env = info.Env();
    const char* op = andDelete ? "bpf_map_lookup_and_delete_batch" : "bpf_map_lookup_batch";
    int fd = Fd(env, op);
    Napi::Value cursorV = Arg(info, 0);
    uint32_t maxCount = U32Arg(Arg(info, 1), "maxCount");
    std::vector<uint8_t> in(CursorSize(), 0);
    bool haveCursor = !IsNullish(cursorV);
    if (haveCursor) {
      Napi::Buffer<uint8_t> cursor = BufferArg(cursorV, "cursor");
      CheckLength(env, op, "cursor", cursor.Length(), CursorSize());
      std::memcpy(in.data(), cursor.Data(), in.size());
    }
    std::vector<uint8_t> keys(static_cast<size_t>(maxCount) * spec_.keySize);
    std::vector<uint8_t> values(static_cast<size_t>(maxCount) * valueBufferSize_);
    auto next = Napi::Buffer<uint8_t>::New(env, CursorSize());
    std::memset(next.Data(), 0, next.Length());
    auto opts = ZeroOpts<bpf_map_batch_opts>();
    __u32 n = maxCount;
    int rc = andDelete ? bpf_map_lookup_and_delete_batch(fd, haveCursor ? in.data() : nullptr,
                                                         next.Data(), keys.data(), values.data(),
                                                         &n, &opts)
                       : bpf_map_lookup_batch(fd, haveCursor ? in.data() : nullptr, next.Data(),
                                              keys.data(), values.data(), &n, &opts);
    bool done = false;
    if (rc < 0) {
      if (-rc != ENOENT) ThrowErrno(env, op, -rc, "map '" + spec_.name + "'");
      done = true;  // ENOENT: this page (maybe empty) is the last one
    }
    Napi::Object result = Napi::Object::New(env);
    result.Set("keys", Napi::Buffer<uint8_t>::Copy(env, keys.data(),
                                                   static_cast<size_t>(n) * spec_.keySize));
    result.Set("values", Napi::Buffer<uint8_t>::Copy(env, values.data(),
                                                     static_cast<size_t>(n) * valueBufferSize_));
    result.Set("count", Napi::Number::New(env, n));
    result.Set("next", done ? env.Null() : static_cast<Napi::Value>(next));
    return result;
  }

  Napi::Value SetInner(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* op = "bpf_map_update_elem";
    int fd = Fd(env, op);
    const void* key = KeyPtr(env, Arg(info, 0), op, false);
    const MapSpec& inner = MapArg(env, Arg(info, 1), "inner");
    if (spec_.valueSize != sizeof(__u32))
      ThrowErrno(env, op, EINVAL, "map '" + spec_.name + "' is not a map-in-map");
    __u32 innerFd = static_cast<__u32>(inner.fd);
    int rc = bpf_map_update_elem(fd, key, &innerFd, BPF_ANY);
    if (rc < 0) ThrowErrno(env, op, -rc, "map '" + spec_.name + "' inner '" + inner.name + "'");
    return env.Undefined();
  }

  Napi::Value Pin(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = Fd(env, "bpf_obj_pin");
    std::string path = StringArg(Arg(info, 0), "path");
    LogCapture capture;
    int rc = bpf_obj_pin(fd, path.c_str());
    if (rc < 0) ThrowErrno(env, "bpf_obj_pin", -rc, path, &capture);
    return env.Undefined();
  }

  Napi::Value Unpin(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string path = StringArg(Arg(info, 0), "path");
    if (unlink(path.c_str()) < 0) ThrowErrno(env, "unlink", errno, path);
    return env.Undefined();
  }

  Napi::Value Freeze(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = Fd(env, "bpf_map_freeze");
    int rc = bpf_map_freeze(fd);
    if (rc < 0) ThrowErrno(env, "bpf_map_freeze", -rc, "map '" + spec_.name + "'");
    return env.Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Release();
    return info.Env().Undefined();
  }

  MapSpec spec_;
  uint32_t valuesPerKey_ = 1;
  size_t valueBufferSize_ = 0;
  std::shared_ptr<Registry> registry_;
};

}  // namespace

Napi::Function InitBpfMap(Napi::Env env) { return BpfMap::Init(env); }

Napi::Object NewBpfMap(Napi::Env env, const MapSpec& spec) {
  MapSpec copy = spec;
  try {
    return Data(env).mapCtor.New({Napi::External<MapSpec>::New(env, &copy)});
  } catch (...) {
    if (spec.fd >= 0) close(spec.fd);
    throw;
  }
}

const MapSpec& MapArg(Napi::Env env, const Napi::Value& v, const char* what) {
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(Data(env).mapCtor.Value()))
    throw Napi::TypeError::New(env, std::string(what) + " must be a BpfMap");
  const MapSpec& spec = BpfMap::Unwrap(v.As<Napi::Object>())->spec();
  if (spec.fd < 0)
    ThrowErrno(env, "BpfMap", EBADF, std::string(what) + " '" + spec.name + "' is closed");
  return spec;
}

}  // namespace moat
