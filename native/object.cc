// BpfObject: open an ELF, adjust globals/map sizes/autoload, load (verifier log on failure).
#include "object.h"

#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "addon.h"
#include "args.h"
#include "errors.h"
#include "map.h"
#include "program.h"

namespace moat {

namespace {

struct OpenArgs {
  struct bpf_object* obj;
  std::string path;
};

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Where a global variable lives: which internal map (.rodata/.data/.bss/...), offset, size.
struct GlobalSlot {
  struct bpf_map* map = nullptr;
  size_t offset = 0;
  size_t size = 0;
};

bool FindGlobal(struct bpf_object* obj, const std::string& name, GlobalSlot* slot) {
  const struct btf* btf = bpf_object__btf(obj);
  if (btf == nullptr) return false;
  __u32 count = btf__type_cnt(btf);
  for (__u32 id = 1; id < count; id++) {
    const struct btf_type* sec = btf__type_by_id(btf, id);
    if (sec == nullptr || !btf_is_datasec(sec)) continue;
    const struct btf_var_secinfo* vars = btf_var_secinfos(sec);
    for (__u16 i = 0; i < btf_vlen(sec); i++) {
      const struct btf_type* var = btf__type_by_id(btf, vars[i].type);
      if (var == nullptr || !btf_is_var(var) || name != btf__name_by_offset(btf, var->name_off))
        continue;
      // The internal map holding this DATASEC: by BTF id when libbpf has filled it in,
      // else by name (libbpf names it "<obj prefix>.rodata", or the section name itself).
      std::string secName = btf__name_by_offset(btf, sec->name_off);
      struct bpf_map* map;
      bpf_object__for_each_map(map, obj) {
        if (!bpf_map__is_internal(map)) continue;
        if (bpf_map__btf_value_type_id(map) == id || EndsWith(bpf_map__name(map), secName)) {
          slot->map = map;
          slot->offset = vars[i].offset;
          slot->size = vars[i].size;
          return true;
        }
      }
    }
  }
  return false;
}

class BpfObject : public Napi::ObjectWrap<BpfObject>, public Closable {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "BpfObject",
                       {
                           StaticMethod<&BpfObject::Open>("open"),
                           InstanceAccessor<&BpfObject::GetPath>("path"),
                           InstanceAccessor<&BpfObject::GetLoaded>("loaded"),
                           InstanceMethod<&BpfObject::Maps>("maps"),
                           InstanceMethod<&BpfObject::Programs>("programs"),
                           InstanceMethod<&BpfObject::SetMaxEntries>("setMaxEntries"),
                           InstanceMethod<&BpfObject::SetGlobal>("setGlobal"),
                           InstanceMethod<&BpfObject::SetAutoload>("setAutoload"),
                           InstanceMethod<&BpfObject::ReuseMap>("reuseMap"),
                           InstanceMethod<&BpfObject::Load>("load"),
                           InstanceMethod<&BpfObject::Map>("map"),
                           InstanceMethod<&BpfObject::Program>("program"),
                           InstanceMethod<&BpfObject::Close>("close"),
                       });
  }

  explicit BpfObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfObject>(info) {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw Napi::TypeError::New(info.Env(),
                                 "BpfObject has no public constructor: use BpfObject.open");
    OpenArgs* args = info[0].As<Napi::External<OpenArgs>>().Data();
    handle_ = std::make_shared<ObjectHandle>();
    handle_->obj = args->obj;
    args->obj = nullptr;  // ours now
    path_ = args->path;
    registry_ = Data(info.Env()).registry;
    registry_->Add(this);
  }

  ~BpfObject() override {
    Release();
    if (registry_) registry_->Remove(this);
  }

  void Release() override {
    if (handle_ && handle_->obj != nullptr) {
      bpf_object__close(handle_->obj);
      handle_->obj = nullptr;
    }
  }

 private:
  static Napi::Value Open(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string path = StringArg(Arg(info, 0), "path");
    Napi::Value pinRootV = OptField(Arg(info, 1), "pinRoot");
    std::string pinRoot = IsNullish(pinRootV) ? "" : StringArg(pinRootV, "pinRoot");
    auto opts = ZeroOpts<bpf_object_open_opts>();
    if (!pinRoot.empty()) opts.pin_root_path = pinRoot.c_str();
    LogCapture capture;
    struct bpf_object* obj = bpf_object__open_file(path.c_str(), &opts);
    if (obj == nullptr) ThrowErrno(env, "bpf_object__open_file", errno, path, &capture);
    OpenArgs args{obj, path};
    try {
      return Data(env).objectCtor.New({Napi::External<OpenArgs>::New(env, &args)});
    } catch (...) {
      if (args.obj != nullptr) bpf_object__close(args.obj);
      throw;
    }
  }

  struct bpf_object* Obj(Napi::Env env, const char* op) {
    if (handle_->obj == nullptr) ThrowErrno(env, op, EBADF, "object " + path_ + " is closed");
    return handle_->obj;
  }

  void RequireNotLoaded(Napi::Env env, const char* op) {
    if (loaded_) ThrowErrno(env, op, EBUSY, "object " + path_ + " is already loaded");
  }

  struct bpf_object* RequireLoaded(Napi::Env env, const char* op) {
    struct bpf_object* obj = Obj(env, op);
    if (!loaded_)
      ThrowErrno(env, op, EINVAL, "object " + path_ + " is not loaded: call load() first");
    return obj;
  }

  Napi::Value GetPath(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), path_);
  }
  Napi::Value GetLoaded(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), loaded_ && handle_->obj != nullptr);
  }

  Napi::Value Maps(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    struct bpf_object* obj = Obj(env, "bpf_object__for_each_map");
    Napi::Array out = Napi::Array::New(env);
    struct bpf_map* map;
    uint32_t i = 0;
    bpf_object__for_each_map(map, obj) {
      Napi::Object m = Napi::Object::New(env);
      m.Set("name", bpf_map__name(map));
      m.Set("type", static_cast<double>(bpf_map__type(map)));
      m.Set("keySize", bpf_map__key_size(map));
      m.Set("valueSize", bpf_map__value_size(map));
      m.Set("maxEntries", bpf_map__max_entries(map));
      m.Set("flags", bpf_map__map_flags(map));
      out.Set(i++, m);
    }
    return out;
  }

  Napi::Value Programs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    struct bpf_object* obj = Obj(env, "bpf_object__for_each_program");
    Napi::Array out = Napi::Array::New(env);
    struct bpf_program* prog;
    uint32_t i = 0;
    bpf_object__for_each_program(prog, obj) {
      Napi::Object p = Napi::Object::New(env);
      p.Set("name", bpf_program__name(prog));
      p.Set("section", bpf_program__section_name(prog));
      p.Set("type", static_cast<double>(bpf_program__type(prog)));
      p.Set("expectedAttachType", static_cast<double>(bpf_program__expected_attach_type(prog)));
      out.Set(i++, p);
    }
    return out;
  }

  Napi::Value SetMaxEntries(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* op = "bpf_map__set_max_entries";
    struct bpf_object* obj = Obj(env, op);
    std::string name = StringArg(Arg(info, 0), "map");
    uint32_t maxEntries = U32Arg(Arg(info, 1), "maxEntries");
    RequireNotLoaded(env, op);
    struct bpf_map* map = bpf_object__find_map_by_name(obj, name.c_str());
    if (map == nullptr) ThrowErrno(env, op, ENOENT, "no map named '" + name + "' in " + path_);
    LogCapture capture;
    int rc = bpf_map__set_max_entries(map, maxEntries);
    if (rc < 0) ThrowErrno(env, op, -rc, name, &capture);
    return env.Undefined();
  }

  Napi::Value SetGlobal(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* op = "bpf_map__set_initial_value";
    struct bpf_object* obj = Obj(env, op);
    std::string name = StringArg(Arg(info, 0), "name");
    Napi::Buffer<uint8_t> value = BufferArg(Arg(info, 1), "value");
    RequireNotLoaded(env, op);
    GlobalSlot slot;
    if (!FindGlobal(obj, name, &slot))
      ThrowErrno(env, op, ENOENT, "no global variable named '" + name + "' in " + path_);
    if (value.Length() != slot.size)
      ThrowErrno(env, op, EINVAL,
                 "global '" + name + "' is " + std::to_string(slot.size) + " bytes, value is " +
                     std::to_string(value.Length()));
    size_t size = 0;
    const void* current = bpf_map__initial_value(slot.map, &size);
    if (current == nullptr || slot.offset + slot.size > size)
      ThrowErrno(env, op, EINVAL, "global '" + name + "' has no initial value to set");
    std::vector<uint8_t> image(static_cast<const uint8_t*>(current),
                               static_cast<const uint8_t*>(current) + size);
    std::memcpy(image.data() + slot.offset, value.Data(), slot.size);
    LogCapture capture;
    int rc = bpf_map__set_initial_value(slot.map, image.data(), image.size());
    if (rc < 0) ThrowErrno(env, op, -rc, name, &capture);
    return env.Undefined();
  }

  Napi::Value SetAutoload(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* op = "bpf_program__set_autoload";
    struct bpf_object* obj = Obj(env, op);
    std::string name = StringArg(Arg(info, 0), "program");
    Napi::Value flag = Arg(info, 1);
    if (!flag.IsBoolean()) throw Napi::TypeError::New(env, "autoload must be a boolean");
    RequireNotLoaded(env, op);
    struct bpf_program* prog = bpf_object__find_program_by_name(obj, name.c_str());
    if (prog == nullptr) ThrowErrno(env, op, ENOENT, "no program named '" + name + "' in " + path_);
    int rc = bpf_program__set_autoload(prog, flag.As<Napi::Boolean>().Value());
    if (rc < 0) ThrowErrno(env, op, -rc, name);
    return env.Undefined();
  }

  // Before load: the object's map `name` becomes `existing` (bpf_map__reuse_fd), so the
  // programs loaded next share it with whoever else holds it (a pinned map).
  Napi::Value ReuseMap(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* op = "bpf_map__reuse_fd";
    struct bpf_object* obj = Obj(env, op);
    std::string name = StringArg(Arg(info, 0), "map");
    const MapSpec& existing = MapArg(env, Arg(info, 1), "existing");
    RequireNotLoaded(env, op);
    struct bpf_map* map = bpf_object__find_map_by_name(obj, name.c_str());
    if (map == nullptr) ThrowErrno(env, op, ENOENT, "no map named '" + name + "' in " + path_);
    LogCapture capture;
    int rc = bpf_map__reuse_fd(map, existing.fd);
    if (rc < 0) ThrowErrno(env, op, -rc, name, &capture);
    return env.Undefined();
  }

  Napi::Value Load(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* op = "bpf_object__load";
    struct bpf_object* obj = Obj(env, op);
    RequireNotLoaded(env, op);
    LogCapture capture;
    int rc = bpf_object__load(obj);
    loaded_ = true;  // libbpf does not allow a second attempt either way
    if (rc < 0) {
      failed_ = true;
      ThrowErrno(env, op, -rc, path_, &capture);
    }
    return env.Undefined();
  }

  Napi::Value Map(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* op = "bpf_object__find_map_by_name";
    struct bpf_object* obj = RequireLoaded(env, op);
    std::string name = StringArg(Arg(info, 0), "name");
    struct bpf_map* map = bpf_object__find_map_by_name(obj, name.c_str());
    if (map == nullptr && name.size() >= BPF_OBJ_NAME_LEN) {
      // a reused map carries the kernel's name, cut to BPF_OBJ_NAME_LEN - 1 characters
      std::string cut = name.substr(0, BPF_OBJ_NAME_LEN - 1);
      map = bpf_object__find_map_by_name(obj, cut.c_str());
    }
    if (map == nullptr) ThrowErrno(env, op, ENOENT, "no map named '" + name + "' in " + path_);
    int fd = failed_ ? -1 : bpf_map__fd(map);
    if (fd < 0) ThrowErrno(env, op, ENOENT, "map '" + name + "' was not created");
    int dup = DupFd(fd);
    if (dup < 0) ThrowErrno(env, "dup", -dup, name);
    MapSpec spec;
    spec.fd = dup;
    spec.name = bpf_map__name(map);
    spec.type = bpf_map__type(map);
    spec.keySize = bpf_map__key_size(map);
    spec.valueSize = bpf_map__value_size(map);
    spec.maxEntries = bpf_map__max_entries(map);
    spec.flags = bpf_map__map_flags(map);
    return NewBpfMap(env, spec);
  }

  Napi::Value Program(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* op = "bpf_object__find_program_by_name";
    struct bpf_object* obj = RequireLoaded(env, op);
    std::string name = StringArg(Arg(info, 0), "name");
    struct bpf_program* prog = bpf_object__find_program_by_name(obj, name.c_str());
    if (prog == nullptr) ThrowErrno(env, op, ENOENT, "no program named '" + name + "' in " + path_);
    int fd = failed_ ? -1 : bpf_program__fd(prog);
    if (fd < 0) ThrowErrno(env, op, ENOENT, "program '" + name + "' was not loaded");
    int dup = DupFd(fd);
    if (dup < 0) ThrowErrno(env, "dup", -dup, name);
    ProgramSpec spec;
    spec.fd = dup;
    spec.name = bpf_program__name(prog);
    spec.section = bpf_program__section_name(prog);
    spec.type = bpf_program__type(prog);
    spec.expectedAttachType = bpf_program__expected_attach_type(prog);
    spec.object = handle_;
    spec.prog = prog;
    return NewBpfProgram(env, spec);
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Release();
    return info.Env().Undefined();
  }

  std::shared_ptr<ObjectHandle> handle_;
  std::string path_;
  bool loaded_ = false;
  bool failed_ = false;
  std::shared_ptr<Registry> registry_;
};

}  // namespace

Napi::Function InitBpfObject(Napi::Env env) { return BpfObject::Init(env); }

}  // namespace moat
