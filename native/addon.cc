// Addon entry: instance data, teardown hook, exports and the small free functions.
#include "addon.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/nsfs.h>
#include <malloc.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

#include <cerrno>

#include "args.h"
#include "errors.h"

namespace moat {

AddonData& Data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

void Registry::HandleClosed() {
  if (--closingHandles == 0 && hook != nullptr) {
    napi_remove_async_cleanup_hook(hook);
    hook = nullptr;
  }
}

void Registry::TearDown(napi_async_cleanup_hook_handle handle) {
  tearingDown = true;
  std::unordered_set<Closable*> open;
  open.swap(live);
  for (Closable* c : open) c->Release();
  // Ring buffers close uv poll handles; Node keeps the loop turning until we say we're done.
  if (closingHandles == 0) {
    napi_remove_async_cleanup_hook(handle);
  } else {
    hook = handle;
  }
}

namespace {

void OnTeardown(napi_async_cleanup_hook_handle handle, void* arg) {
  auto* holder = static_cast<std::shared_ptr<Registry>*>(arg);
  std::shared_ptr<Registry> registry = std::move(*holder);
  delete holder;
  registry->TearDown(handle);
}

Napi::Value SetErrorClass(const Napi::CallbackInfo& info) {
  Napi::Value ctor = Arg(info, 0);
  if (!ctor.IsFunction()) throw Napi::TypeError::New(info.Env(), "setErrorClass expects a class");
  Data(info.Env()).errorClass = Napi::Persistent(ctor.As<Napi::Function>());
  return info.Env().Undefined();
}

Napi::Value NumPossibleCpus(const Napi::CallbackInfo& info) {
  LogCapture capture;
  int n = libbpf_num_possible_cpus();
  if (n < 0) ThrowErrno(info.Env(), "libbpf_num_possible_cpus", -n, "", &capture);
  return Napi::Number::New(info.Env(), n);
}

Napi::Value IfIndex(const Napi::CallbackInfo& info) {
  std::string name = StringArg(Arg(info, 0), "name");
  unsigned int index = if_nametoindex(name.c_str());
  if (index == 0) ThrowErrno(info.Env(), "if_nametoindex", errno ? errno : ENODEV, name);
  return Napi::Number::New(info.Env(), index);
}

// The cookie of this process's network namespace (SO_NETNS_COOKIE), as bpf_get_netns_cookie()
// gives it to programs: lets them tell moat's own namespace from a container's.
Napi::Value NetnsCookie(const Napi::CallbackInfo& info) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(info.Env(), "socket", errno);
  uint64_t cookie = 0;
  socklen_t len = sizeof(cookie);
  int rc = getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len);
  int err = errno;
  close(fd);
  if (rc < 0) ThrowErrno(info.Env(), "getsockopt SO_NETNS_COOKIE", err);
  return Napi::BigInt::New(info.Env(), cookie);
}

// The inode of the user namespace that owns the namespace at `nsPath` (NS_GET_USERNS): whoever is
// root in that user namespace sets the namespace's addresses and routes.
Napi::Value NamespaceOwner(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(Arg(info, 0), "nsPath");
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) ThrowErrno(env, "open", errno, path);
  int owner = ioctl(fd, NS_GET_USERNS);
  int err = errno;
  close(fd);
  if (owner < 0) ThrowErrno(env, "ioctl NS_GET_USERNS", err, path);
  struct stat st{};
  int rc = fstat(owner, &st);
  err = errno;
  close(owner);
  if (rc < 0) ThrowErrno(env, "fstat", err, path);
  return Napi::Number::New(env, static_cast<double>(st.st_ino));
}

// The XDP attach mode of an interface (bpf_xdp_query): "native", "generic", "offload",
// "multi" or "none"; tells which mode a pinned XDP link was attached in.
Napi::Value XdpAttachMode(const Napi::CallbackInfo& info) {
  uint32_t ifindex = U32Arg(Arg(info, 0), "ifindex");
  auto opts = ZeroOpts<bpf_xdp_query_opts>();
  LogCapture capture;
  int rc = bpf_xdp_query(static_cast<int>(ifindex), 0, &opts);
  if (rc < 0) ThrowErrno(info.Env(), "bpf_xdp_query", -rc, std::to_string(ifindex), &capture);
  const char* mode = "none";
  switch (opts.attach_mode) {
    case XDP_ATTACHED_DRV:
      mode = "native";
      break;
    case XDP_ATTACHED_SKB:
      mode = "generic";
      break;
    case XDP_ATTACHED_HW:
      mode = "offload";
      break;
    case XDP_ATTACHED_MULTI:
      mode = "multi";
      break;
    default:
      break;
  }
  return Napi::String::New(info.Env(), mode);
}

// Gives the C heap's free pages back to the system (every thread's arena, not only its top). After
// a big policy is accepted and its worker thread stops, what that thread's arena freed stays in
// the process otherwise: hundreds of megabytes for 100k rules.
Napi::Value TrimMemory(const Napi::CallbackInfo& info) {
#ifdef __GLIBC__
  return Napi::Boolean::New(info.Env(), malloc_trim(0) != 0);
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

// Fixes glibc's trim and mmap thresholds (bytes). Left to glibc, they rise with the largest block
// given back by munmap (up to 32 MiB, and twice that for the trim): a thread's arena then keeps a
// free top of tens of megabytes resident, which neither free() nor malloc_trim() gives back.
// Process-wide; false where a value is refused (or no glibc).
Napi::Value MallocThresholds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t trim = static_cast<int32_t>(NumberArg(Arg(info, 0), "trimBytes", 0, 2147483647.0));
  int32_t mmap = static_cast<int32_t>(NumberArg(Arg(info, 1), "mmapBytes", 0, 2147483647.0));
#ifdef __GLIBC__
  bool set = mallopt(M_TRIM_THRESHOLD, trim) == 1;
  set = mallopt(M_MMAP_THRESHOLD, mmap) == 1 && set;
  return Napi::Boolean::New(env, set);
#else
  (void)trim;
  (void)mmap;
  return Napi::Boolean::New(env, false);
#endif
}

Napi::Value LibbpfVersion(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), libbpf_version_string());
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InstallLibbpfPrint();
  auto* data = new AddonData();
  env.SetInstanceData<AddonData>(data);

  auto* holder = new std::shared_ptr<Registry>(data->registry);
  if (napi_add_async_cleanup_hook(env, OnTeardown, holder, nullptr) != napi_ok) {
    delete holder;
    throw Napi::Error::New(env, "moat_native: napi_add_async_cleanup_hook failed");
  }

  Napi::Function object = InitBpfObject(env);
  Napi::Function map = InitBpfMap(env);
  Napi::Function program = InitBpfProgram(env);
  Napi::Function link = InitBpfLink(env);
  Napi::Function ring = InitRingBuffer(env);
  data->objectCtor = Napi::Persistent(object);
  data->mapCtor = Napi::Persistent(map);
  data->programCtor = Napi::Persistent(program);
  data->linkCtor = Napi::Persistent(link);
  data->ringCtor = Napi::Persistent(ring);

  exports.Set("BpfObject", object);
  exports.Set("BpfMap", map);
  exports.Set("BpfProgram", program);
  exports.Set("BpfLink", link);
  exports.Set("RingBuffer", ring);
  exports.Set("RtnlWatch", InitRtnlWatch(env));
  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClass, "setErrorClass"));
  exports.Set("numPossibleCpus", Napi::Function::New(env, NumPossibleCpus, "numPossibleCpus"));
  exports.Set("netnsCookie", Napi::Function::New(env, NetnsCookie, "netnsCookie"));
  exports.Set("namespaceOwner", Napi::Function::New(env, NamespaceOwner, "namespaceOwner"));
  exports.Set("ifindex", Napi::Function::New(env, IfIndex, "ifindex"));
  exports.Set("xdpAttachMode", Napi::Function::New(env, XdpAttachMode, "xdpAttachMode"));
  exports.Set("trimMemory", Napi::Function::New(env, TrimMemory, "trimMemory"));
  exports.Set("mallocThresholds", Napi::Function::New(env, MallocThresholds, "mallocThresholds"));
  exports.Set("libbpfVersion", Napi::Function::New(env, LibbpfVersion, "libbpfVersion"));
  exports.Set("updateBatches", Napi::Function::New(env, UpdateBatches, "updateBatches"));
  exports.Set("sockDestroy", Napi::Function::New(env, SockDestroy, "sockDestroy"));
  exports.Set("peerCredentials", Napi::Function::New(env, PeerCredentials, "peerCredentials"));
  exports.Set("unixSendBuffer", Napi::Function::New(env, UnixSendBuffer, "unixSendBuffer"));
  exports.Set("sockList", Napi::Function::New(env, SockList, "sockList"));
  exports.Set("netnsSocket", Napi::Function::New(env, NetnsSocket, "netnsSocket"));
  exports.Set("sockmapAttach", Napi::Function::New(env, SockmapAttach, "sockmapAttach"));
  exports.Set("splicePair", Napi::Function::New(env, SplicePairFn, "splicePair"));
  exports.Set("spliceCut", Napi::Function::New(env, SpliceCutFn, "spliceCut"));
  exports.Set("relaySocket", Napi::Function::New(env, RelaySocket, "relaySocket"));
  return exports;
}

}  // namespace

}  // namespace moat

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  return moat::Init(env, exports);
}

NODE_API_MODULE(moat_native, InitModule)
