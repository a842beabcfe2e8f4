// BpfProgram: attach by link (XDP, tcx/clsact, cgroup, uprobe), BPF_PROG_TEST_RUN, pin.
#include "program.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "addon.h"
#include "args.h"
#include "errors.h"
#include "link.h"

namespace moat {

namespace {

// Not in Debian 12's linux-libc-dev (6.1) UAPI headers; values from the running kernel's BTF.
constexpr int kBpfTcxIngress = 46;
constexpr int kBpfTcxEgress = 47;

struct CgroupAttachName {
  const char* name;
  enum bpf_attach_type type;
};

constexpr CgroupAttachName kCgroupAttach[] = {
    {"connect4", BPF_CGROUP_INET4_CONNECT},
    {"connect6", BPF_CGROUP_INET6_CONNECT},
    {"sendmsg4", BPF_CGROUP_UDP4_SENDMSG},
    {"sendmsg6", BPF_CGROUP_UDP6_SENDMSG},
    {"recvmsg4", BPF_CGROUP_UDP4_RECVMSG},
    {"recvmsg6", BPF_CGROUP_UDP6_RECVMSG},
    {"getpeername4", BPF_CGROUP_INET4_GETPEERNAME},
    {"getpeername6", BPF_CGROUP_INET6_GETPEERNAME},
    {"getsockname4", BPF_CGROUP_INET4_GETSOCKNAME},
    {"getsockname6", BPF_CGROUP_INET6_GETSOCKNAME},
    {"sock_ops", BPF_CGROUP_SOCK_OPS},
    {"sock_create", BPF_CGROUP_INET_SOCK_CREATE},
    {"skb_ingress", BPF_CGROUP_INET_INGRESS},
    {"skb_egress", BPF_CGROUP_INET_EGRESS},
    {"post_bind4", BPF_CGROUP_INET4_POST_BIND},
    {"post_bind6", BPF_CGROUP_INET6_POST_BIND},
};

// ---- BPF_PROG_TEST_RUN, usable on the JS thread and on the libuv pool ----

struct TestRunArgs {
  std::vector<uint8_t> data;
  std::vector<uint8_t> ctx;
  bool hasCtx = false;
  uint32_t dataOutSize = 0;
  uint32_t ctxOutSize = 0;
  int repeat = 1;
  uint32_t flags = 0;
  uint32_t cpu = 0;
};

struct TestRunOut {
  int rc = 0;  // 0 or -errno
  uint32_t retval = 0;
  uint32_t duration = 0;
  std::vector<uint8_t> dataOut;
  std::vector<uint8_t> ctxOut;
};

TestRunArgs ParseTestRun(const Napi::Value& opts) {
  TestRunArgs a;
  Napi::Value data = OptField(opts, "data");
  if (!IsNullish(data)) {
    Napi::Buffer<uint8_t> b = BufferArg(data, "data");
    a.data.assign(b.Data(), b.Data() + b.Length());
  }
  Napi::Value ctx = OptField(opts, "ctx");
  if (!IsNullish(ctx)) {
    Napi::Buffer<uint8_t> b = BufferArg(ctx, "ctx");
    a.ctx.assign(b.Data(), b.Data() + b.Length());
    a.hasCtx = true;
  }
  a.dataOutSize = OptU32(opts, "dataOutSize", static_cast<uint32_t>(a.data.size()) + 256);
  a.ctxOutSize = OptU32(opts, "ctxOutSize", static_cast<uint32_t>(a.ctx.size()));
  if (!IsNullish(OptField(opts, "ctxOutSize"))) a.hasCtx = true;
  Napi::Value repeat = OptField(opts, "repeat");
  a.repeat = IsNullish(repeat) ? 1 : static_cast<int>(NumberArg(repeat, "repeat", 0, 2147483647.0));
  a.flags = OptU32(opts, "flags", 0);
  a.cpu = OptU32(opts, "cpu", 0);
  return a;
}

TestRunOut RunTest(int fd, const TestRunArgs& a) {
  TestRunOut out;
  out.dataOut.resize(a.dataOutSize);
  out.ctxOut.resize(a.hasCtx ? a.ctxOutSize : 0);
  auto opts = ZeroOpts<bpf_test_run_opts>();
  opts.data_in = a.data.empty() ? nullptr : a.data.data();
  opts.data_size_in = static_cast<__u32>(a.data.size());
  opts.data_out = out.dataOut.empty() ? nullptr : out.dataOut.data();
  opts.data_size_out = static_cast<__u32>(out.dataOut.size());
  opts.ctx_in = a.ctx.empty() ? nullptr : a.ctx.data();
  opts.ctx_size_in = static_cast<__u32>(a.ctx.size());
  opts.ctx_out = out.ctxOut.empty() ? nullptr : out.ctxOut.data();
  opts.ctx_size_out = static_cast<__u32>(out.ctxOut.size());
  opts.repeat = a.repeat;
  opts.flags = a.flags;
  opts.cpu = a.cpu;
  int rc = bpf_prog_test_run_opts(fd, &opts);
  if (rc < 0) {
    out.rc = rc;
    return out;
  }
  out.retval = opts.retval;
  out.duration = opts.duration;
  out.dataOut.resize(std::min<size_t>(opts.data_size_out, out.dataOut.size()));
  out.ctxOut.resize(std::min<size_t>(opts.ctx_size_out, out.ctxOut.size()));
  return out;
}

Napi::Object TestRunResult(Napi::Env env, const TestRunOut& out, bool hasCtx) {
  Napi::Object r = Napi::Object::New(env);
  r.Set("retval", out.retval);
  r.Set("duration", out.duration);
  r.Set("dataOut", Napi::Buffer<uint8_t>::Copy(env, out.dataOut.data(), out.dataOut.size()));
  r.Set("ctxOut", hasCtx ? static_cast<Napi::Value>(Napi::Buffer<uint8_t>::Copy(
                               env, out.ctxOut.data(), out.ctxOut.size()))
                         : env.Null());
  return r;
}

// A bounded kernel call on the libuv pool; owns a dup of the program fd so closing the
// program meanwhile is harmless.
class TestRunWorker : public Napi::AsyncWorker {
 public:
  TestRunWorker(Napi::Env env, int fd, std::string name, TestRunArgs args)
      : Napi::AsyncWorker(env, "moat:testRun"),
        deferred_(Napi::Promise::Deferred::New(env)),
        fd_(fd),
        name_(std::move(name)),
        args_(std::move(args)) {}

  ~TestRunWorker() override {
    if (fd_ >= 0) close(fd_);
  }

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override { out_ = RunTest(fd_, args_); }

  void OnOK() override {
    Napi::Env env = Env();
    try {
      if (out_.rc < 0) {
        deferred_.Reject(
            MakeError(env, Failure("bpf_prog_test_run_opts", -out_.rc, "program '" + name_ + "'")));
      } else {
        deferred_.Resolve(TestRunResult(env, out_, args_.hasCtx));
      }
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }

 private:
  Napi::Promise::Deferred deferred_;
  int fd_;
  std::string name_;
  TestRunArgs args_;
  TestRunOut out_;
};

class BpfProgram : public Napi::ObjectWrap<BpfProgram>, public Closable {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "BpfProgram",
                       {
                           InstanceAccessor<&BpfProgram::GetName>("name"),
                           InstanceAccessor<&BpfProgram::GetSection>("section"),
                           InstanceAccessor<&BpfProgram::GetFd>("fd"),
                           InstanceAccessor<&BpfProgram::GetType>("type"),
                           InstanceMethod<&BpfProgram::Id>("id"),
                           InstanceMethod<&BpfProgram::AttachXdp>("attachXdp"),
                           InstanceMethod<&BpfProgram::AttachTc>("attachTc"),
                           InstanceMethod<&BpfProgram::AttachCgroup>("attachCgroup"),
                           InstanceMethod<&BpfProgram::AttachUprobe>("attachUprobe"),
                           InstanceMethod<&BpfProgram::AttachIter>("attachIter"),
                           InstanceMethod<&BpfProgram::AttachTracing>("attachTracing"),
                           InstanceMethod<&BpfProgram::TestRun>("testRun"),
                           InstanceMethod<&BpfProgram::TestRunAsync>("testRunAsync"),
                           InstanceMethod<&BpfProgram::Pin>("pin"),
                           InstanceMethod<&BpfProgram::Close>("close"),
                       });
  }

  explicit BpfProgram(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfProgram>(info) {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw Napi::TypeError::New(info.Env(),
                                 "BpfProgram has no public constructor: use BpfObject.program");
    spec_ = *info[0].As<Napi::External<ProgramSpec>>().Data();
    registry_ = Data(info.Env()).registry;
    registry_->Add(this);
  }

  ~BpfProgram() override {
    Release();
    if (registry_) registry_->Remove(this);
  }

  void Release() override {
    if (spec_.fd >= 0) {
      close(spec_.fd);
      spec_.fd = -1;
    }
    spec_.object.reset();
    spec_.prog = nullptr;
  }

 private:
  int Fd(Napi::Env env, const char* op) {
    if (spec_.fd < 0) ThrowErrno(env, op, EBADF, "program '" + spec_.name + "' is closed");
    return spec_.fd;
  }

  std::string Who() const { return "program '" + spec_.name + "'"; }

  Napi::Value GetName(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), spec_.name);
  }
  Napi::Value GetSection(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), spec_.section);
  }
  Napi::Value GetFd(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), spec_.fd);
  }
  Napi::Value GetType(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), spec_.type);
  }

  Napi::Value Id(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = Fd(env, "bpf_obj_get_info_by_fd");
    struct bpf_prog_info pi;
    std::memset(&pi, 0, sizeof(pi));
    __u32 len = sizeof(pi);
    if (bpf_obj_get_info_by_fd(fd, &pi, &len) < 0)
      ThrowErrno(env, "bpf_obj_get_info_by_fd", errno, Who());
    return Napi::Number::New(env, pi.id);
  }

  Napi::Value AttachXdp(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* op = "bpf_link_create(BPF_XDP)";
    int fd = Fd(env, op);
    int ifindex = static_cast<int>(NumberArg(Arg(info, 0), "ifindex", 1, 2147483647.0));
    std::string mode = IsNullish(Arg(info, 1)) ? "auto" : StringArg(info[1], "mode");
    auto opts = ZeroOpts<bpf_link_create_opts>();
    if (mode == "native") {
      opts.flags = XDP_FLAGS_DRV_MODE;
    } else if (mode == "generic") {
      opts.flags = XDP_FLAGS_SKB_MODE;
    } else if (mode == "offload") {
      opts.flags = XDP_FLAGS_HW_MODE;
    } else if (mode != "auto") {
      throw Napi::TypeError::New(env, "mode must be native, generic, offload or auto");
    }
    LogCapture capture;
    int link = bpf_link_create(fd, ifindex, BPF_XDP, &opts);
    if (link < 0)
      ThrowErrno(env, op, -link, Who() + " ifindex " + std::to_string(ifindex) + " mode " + mode,
                 &capture);
    LinkSpec spec;
    spec.kind = "xdp";
    spec.fd = link;
    return NewBpfLink(env, spec);
  }

  Napi::Value AttachTc(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = Fd(env, "attachTc");
    int ifindex = static_cast<int>(NumberArg(Arg(info, 0), "ifindex", 1, 2147483647.0));
    std::string direction = StringArg(Arg(info, 1), "direction");
    if (direction != "ingress" && direction != "egress")
      throw Napi::TypeError::New(env, "direction must be ingress or egress");
    Napi::Value modeV = OptField(Arg(info, 2), "mode");
    std::string mode = IsNullish(modeV) ? "auto" : StringArg(modeV, "mode");
    if (mode != "auto" && mode != "tcx" && mode != "clsact")
      throw Napi::TypeError::New(env, "mode must be auto, tcx or clsact");
    bool ingress = direction == "ingress";
    std::string where = Who() + " ifindex " + std::to_string(ifindex) + " " + direction;

    if (mode != "clsact") {
      LogCapture capture;
      auto type = static_cast<enum bpf_attach_type>(ingress ? kBpfTcxIngress : kBpfTcxEgress);
      int link = bpf_link_create(fd, ifindex, type, nullptr);
      if (link >= 0) {
        LinkSpec spec;
        spec.kind = "tcx";
        spec.fd = link;
        return NewBpfLink(env, spec);
      }
      // Kernels without tcx reject the attach type; anything else is a real failure.
      bool noTcx = -link == EINVAL || -link == EOPNOTSUPP || -link == 524 /* ENOTSUPP */;
      if (mode == "tcx" || !noTcx)
        ThrowErrno(env, "bpf_link_create(BPF_TCX)", -link, where, &capture);
    }

    LogCapture capture;
    LinkSpec spec;
    spec.kind = "tc";
    spec.tcFilter = true;
    spec.hook = ZeroOpts<bpf_tc_hook>();
    spec.hook.ifindex = ifindex;
    spec.hook.attach_point = ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS;
    int rc = bpf_tc_hook_create(&spec.hook);
    if (rc < 0 && rc != -EEXIST) ThrowErrno(env, "bpf_tc_hook_create", -rc, where, &capture);
    spec.tcOpts = ZeroOpts<bpf_tc_opts>();
    spec.tcOpts.prog_fd = fd;
    rc = bpf_tc_attach(&spec.hook, &spec.tcOpts);
    if (rc < 0) ThrowErrno(env, "bpf_tc_attach", -rc, where, &capture);
    return NewBpfLink(env, spec);
  }

  Napi::Value AttachCgroup(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = Fd(env, "bpf_link_create(cgroup)");
    std::string path = StringArg(Arg(info, 0), "cgroupPath");
    std::string attach = StringArg(Arg(info, 1), "attach");
    const CgroupAttachName* found = nullptr;
    for (const auto& a : kCgroupAttach)
      if (attach == a.name) found = &a;
    if (found == nullptr)
      throw Napi::TypeError::New(env, "unknown cgroup attach point '" + attach + "'");
    int cg = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cg < 0) ThrowErrno(env, "open", errno, path);
    LogCapture capture;
    int link = bpf_link_create(fd, cg, found->type, nullptr);
    int err = link < 0 ? -link : 0;
    close(cg);
    if (link < 0)
      ThrowErrno(env, "bpf_link_create(cgroup)", err, Who() + " " + attach + " " + path, &capture);
    LinkSpec spec;
    spec.kind = "cgroup";
    spec.fd = link;
    return NewBpfLink(env, spec);
  }

  Napi::Value AttachUprobe(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* op = "bpf_program__attach_uprobe_opts";
    Fd(env, op);
    if (!spec_.object || spec_.object->obj == nullptr || spec_.prog == nullptr)
      ThrowErrno(env, op, EBADF, "the object of " + Who() + " is closed");
    std::string binary = StringArg(Arg(info, 0), "binaryPath");
    Napi::Value opts = Arg(info, 1);
    Napi::Value funcV = OptField(opts, "func");
    std::string func = IsNullish(funcV) ? "" : StringArg(funcV, "func");
    Napi::Value offsetV = OptField(opts, "offset");
    size_t offset = IsNullish(offsetV)
                        ? 0
                        : static_cast<size_t>(NumberArg(offsetV, "offset", 0, 9007199254740991.0));
    Napi::Value pidV = OptField(opts, "pid");
    pid_t pid = IsNullish(pidV) ? -1 : I32Arg(pidV, "pid");
    Napi::Value retV = OptField(opts, "retprobe");
    auto uopts = ZeroOpts<bpf_uprobe_opts>();
    uopts.retprobe = !IsNullish(retV) && retV.ToBoolean().Value();
    uopts.func_name = func.empty() ? nullptr : func.c_str();
    LogCapture capture;
    struct bpf_link* link =
        bpf_program__attach_uprobe_opts(spec_.prog, pid, binary.c_str(), offset, &uopts);
    if (link == nullptr)
      ThrowErrno(env, op, errno, Who() + " " + binary + (func.empty() ? "" : ":" + func), &capture);
    LinkSpec spec;
    spec.kind = "uprobe";
    spec.link = link;
    spec.fd = bpf_link__fd(link);
    return NewBpfLink(env, spec);
  }

  // A BPF iterator (SEC("iter/...")): each BpfLink.readIter() runs it once and returns its text.
  Napi::Value AttachIter(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* op = "bpf_program__attach_iter";
    Fd(env, op);
    if (!spec_.object || spec_.object->obj == nullptr || spec_.prog == nullptr)
      ThrowErrno(env, op, EBADF, "the object of " + Who() + " is closed");
    LogCapture capture;
    struct bpf_link* link = bpf_program__attach_iter(spec_.prog, nullptr);
    if (link == nullptr) ThrowErrno(env, op, errno, Who(), &capture);
    LinkSpec spec;
    spec.kind = "iter";
    spec.link = link;
    spec.fd = bpf_link__fd(link);
    return NewBpfLink(env, spec);
  }

  // A BTF tracepoint (SEC("tp_btf/...")): attached to the tracepoint its section names.
  Napi::Value AttachTracing(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* op = "bpf_program__attach_trace";
    Fd(env, op);
    if (!spec_.object || spec_.object->obj == nullptr || spec_.prog == nullptr)
      ThrowErrno(env, op, EBADF, "the object of " + Who() + " is closed");
    LogCapture capture;
    struct bpf_link* link = bpf_program__attach_trace(spec_.prog);
    if (link == nullptr) ThrowErrno(env, op, errno, Who(), &capture);
    LinkSpec spec;
    spec.kind = "tracing";
    spec.link = link;
    spec.fd = bpf_link__fd(link);
    return NewBpfLink(env, spec);
  }

  Napi::Value TestRun(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = Fd(env, "bpf_prog_test_run_opts");
    TestRunArgs args = ParseTestRun(Arg(info, 0));
    LogCapture capture;
    TestRunOut out = RunTest(fd, args);
    if (out.rc < 0) ThrowErrno(env, "bpf_prog_test_run_opts", -out.rc, Who(), &capture);
    return TestRunResult(env, out, args.hasCtx);
  }

  Napi::Value TestRunAsync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = Fd(env, "bpf_prog_test_run_opts");
    TestRunArgs args = ParseTestRun(Arg(info, 0));
    int dup = DupFd(fd);
    if (dup < 0) ThrowErrno(env, "dup", -dup, Who());
    auto* worker = new TestRunWorker(env, dup, spec_.name, std::move(args));
    Napi::Promise promise = worker->Promise();
    worker->Queue();  // deletes itself when done
    return promise;
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

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Release();
    return info.Env().Undefined();
  }

  ProgramSpec spec_;
  std::shared_ptr<Registry> registry_;
};

}  // namespace

Napi::Function InitBpfProgram(Napi::Env env) { return BpfProgram::Init(env); }

Napi::Object NewBpfProgram(Napi::Env env, const ProgramSpec& spec) {
  ProgramSpec copy = spec;
  try {
    return Data(env).programCtor.New({Napi::External<ProgramSpec>::New(env, &copy)});
  } catch (...) {
    if (spec.fd >= 0) close(spec.fd);
    throw;
  }
}

}  // namespace moat
