// BpfLink: owns one attachment; destroy() detaches (unless pinned) and is idempotent.
#include "link.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "addon.h"
#include "args.h"
#include "errors.h"

namespace moat {

void ReleaseLinkSpec(LinkSpec* spec) {
  if (spec->tcFilter) {
    // bpf_tc_detach wants only handle + priority; the filter may already be gone with its device.
    auto opts = ZeroOpts<bpf_tc_opts>();
    opts.handle = spec->tcOpts.handle;
    opts.priority = spec->tcOpts.priority;
    LogCapture quiet;
    bpf_tc_detach(&spec->hook, &opts);
    spec->tcFilter = false;
  }
  if (spec->link != nullptr) {
    bpf_link__destroy(spec->link);  // closes the fd too
    spec->link = nullptr;
    spec->fd = -1;
  }
  if (spec->fd >= 0) {
    close(spec->fd);
    spec->fd = -1;
  }
}

namespace {

class BpfLink : public Napi::ObjectWrap<BpfLink>, public Closable {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "BpfLink",
                       {
                           StaticMethod<&BpfLink::OpenPinned>("openPinned"),
                           InstanceAccessor<&BpfLink::GetFd>("fd"),
                           InstanceAccessor<&BpfLink::GetKind>("kind"),
                           InstanceMethod<&BpfLink::Id>("id"),
                           InstanceMethod<&BpfLink::Pin>("pin"),
                           InstanceMethod<&BpfLink::Unpin>("unpin"),
                           InstanceMethod<&BpfLink::Update>("update"),
                           InstanceMethod<&BpfLink::ReadIter>("readIter"),
                           InstanceMethod<&BpfLink::Destroy>("destroy"),
                       });
  }

  explicit BpfLink(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfLink>(info) {
    if (info.Length() < 1 || !info[0].IsExternal())
      throw Napi::TypeError::New(info.Env(),
                                 "BpfLink has no public constructor: use a BpfProgram attach "
                                 "method or BpfLink.openPinned");
    LinkSpec* src = info[0].As<Napi::External<LinkSpec>>().Data();
    spec_ = *src;
    src->fd = -1;  // moved: the caller no longer releases it
    src->link = nullptr;
    src->tcFilter = false;
    if (info.Length() > 1 && info[1].IsString()) pinPath_ = info[1].As<Napi::String>().Utf8Value();
    registry_ = Data(info.Env()).registry;
    registry_->Add(this);
  }

  ~BpfLink() override {
    Release();
    if (registry_) registry_->Remove(this);
  }

  void Release() override {
    ReleaseLinkSpec(&spec_);
    destroyed_ = true;
  }

 private:
  static Napi::Value OpenPinned(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string path = StringArg(Arg(info, 0), "path");
    LogCapture capture;
    int fd = bpf_obj_get(path.c_str());
    if (fd < 0) ThrowErrno(env, "bpf_obj_get", -fd, path, &capture);
    struct bpf_link_info li;
    std::memset(&li, 0, sizeof(li));
    __u32 len = sizeof(li);
    if (bpf_obj_get_info_by_fd(fd, &li, &len) < 0 || li.id == 0) {
      int err = errno ? errno : EINVAL;
      close(fd);
      ThrowErrno(env, "bpf_obj_get_info_by_fd", err, path + " is not a pinned link");
    }
    LinkSpec spec;
    spec.kind = "pinned";
    spec.fd = fd;
    try {
      return Data(env).linkCtor.New(
          {Napi::External<LinkSpec>::New(env, &spec), Napi::String::New(env, path)});
    } catch (...) {
      ReleaseLinkSpec(&spec);
      throw;
    }
  }

  int Fd(Napi::Env env, const char* op) {
    if (destroyed_) ThrowErrno(env, op, EBADF, spec_.kind + " link is destroyed");
    if (spec_.fd < 0) ThrowErrno(env, op, EOPNOTSUPP, "a clsact tc filter is not a bpf_link");
    return spec_.fd;
  }

  Napi::Value GetFd(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), spec_.fd);
  }
  Napi::Value GetKind(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), spec_.kind);
  }

  Napi::Value Id(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!destroyed_ && spec_.tcFilter) return Napi::Number::New(env, 0);
    int fd = Fd(env, "bpf_obj_get_info_by_fd");
    struct bpf_link_info li;
    std::memset(&li, 0, sizeof(li));
    __u32 len = sizeof(li);
    if (bpf_obj_get_info_by_fd(fd, &li, &len) < 0)
      ThrowErrno(env, "bpf_obj_get_info_by_fd", errno, spec_.kind);
    return Napi::Number::New(env, li.id);
  }

  Napi::Value Pin(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = Fd(env, "bpf_obj_pin");
    std::string path = StringArg(Arg(info, 0), "path");
    LogCapture capture;
    int rc = bpf_obj_pin(fd, path.c_str());
    if (rc < 0) ThrowErrno(env, "bpf_obj_pin", -rc, path, &capture);
    pinPath_ = path;
    return env.Undefined();
  }

  Napi::Value Unpin(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (pinPath_.empty()) ThrowErrno(env, "unlink", EINVAL, spec_.kind + " link is not pinned");
    if (unlink(pinPath_.c_str()) < 0) ThrowErrno(env, "unlink", errno, pinPath_);
    pinPath_.clear();
    return env.Undefined();
  }

  // Replaces the link's program in place (bpf_link_update): the hook never runs without one.
  Napi::Value Update(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = Fd(env, "bpf_link_update");
    Napi::Value program = Arg(info, 0);
    if (!program.IsObject()) throw Napi::TypeError::New(env, "program must be a BpfProgram");
    int32_t progFd = I32Arg(program.As<Napi::Object>().Get("fd"), "program.fd");
    if (progFd < 0) ThrowErrno(env, "bpf_link_update", EBADF, "program is closed");
    LogCapture capture;
    int rc = bpf_link_update(fd, progFd, nullptr);
    if (rc < 0) ThrowErrno(env, "bpf_link_update", -rc, spec_.kind, &capture);
    return env.Undefined();
  }

  // An iterator link's text: a new iterator (bpf_iter_create) read to its end.
  Napi::Value ReadIter(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = Fd(env, "bpf_iter_create");
    if (spec_.kind != "iter")
      ThrowErrno(env, "bpf_iter_create", EINVAL, spec_.kind + " link is not an iterator");
    int iter = bpf_iter_create(fd);
    if (iter < 0) ThrowErrno(env, "bpf_iter_create", -iter, spec_.kind);
    std::string text;
    char buf[16384];
    for (;;) {
      ssize_t n = read(iter, buf, sizeof(buf));
      if (n > 0) {
        text.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      int err = n < 0 ? errno : 0;
      close(iter);
      if (err != 0) ThrowErrno(env, "read", err, "iterator");
      break;
    }
    return Napi::String::New(env, text);
  }

  Napi::Value Destroy(const Napi::CallbackInfo& info) {
    Release();
    return info.Env().Undefined();
  }

  LinkSpec spec_;
  std::string pinPath_;
  bool destroyed_ = false;
  std::shared_ptr<Registry> registry_;
};

}  // namespace

Napi::Function InitBpfLink(Napi::Env env) { return BpfLink::Init(env); }

Napi::Object NewBpfLink(Napi::Env env, const LinkSpec& spec) {
  LinkSpec copy = spec;
  try {
    return Data(env).linkCtor.New({Napi::External<LinkSpec>::New(env, &copy)});
  } catch (...) {
    ReleaseLinkSpec(&copy);
    throw;
  }
}

}  // namespace moat
