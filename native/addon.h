// Per-addon instance data and the registry of open kernel resources.
// No globals: everything hangs off the napi_env's instance data.
#pragma once

#include <napi.h>

#include <memory>
#include <unordered_set>

namespace moat {

// A native resource (fd, libbpf object, link, ring) that environment teardown must release.
class Closable {
 public:
  virtual ~Closable() = default;
  // Releases the kernel resource. Idempotent; never calls into JS.
  virtual void Release() = 0;
};

// Shared by the addon instance, every wrapper and every closing uv handle, so whichever
// is destroyed last (at teardown the order is not ours to choose) frees it.
struct Registry {
  std::unordered_set<Closable*> live;
  // uv handles whose uv_close callback has not run yet.
  int closingHandles = 0;
  napi_async_cleanup_hook_handle hook = nullptr;
  bool tearingDown = false;

  void Add(Closable* c) {
    if (!tearingDown) live.insert(c);
  }
  void Remove(Closable* c) { live.erase(c); }
  // Called when a uv handle finished closing; completes teardown when it was the last.
  void HandleClosed();
  // Env teardown: release everything still open.
  void TearDown(napi_async_cleanup_hook_handle handle);
};

struct AddonData {
  std::shared_ptr<Registry> registry = std::make_shared<Registry>();
  Napi::FunctionReference errorClass;
  Napi::FunctionReference objectCtor;
  Napi::FunctionReference mapCtor;
  Napi::FunctionReference programCtor;
  Napi::FunctionReference linkCtor;
  Napi::FunctionReference ringCtor;
};

AddonData& Data(Napi::Env env);

// Class initialisers (each defined in its own file); they return the JS constructor.
Napi::Function InitBpfObject(Napi::Env env);
Napi::Function InitBpfMap(Napi::Env env);
Napi::Function InitBpfProgram(Napi::Env env);
Napi::Function InitBpfLink(Napi::Env env);
Napi::Function InitRingBuffer(Napi::Env env);
Napi::Function InitRtnlWatch(Napi::Env env);

// Free functions defined in their own files.
Napi::Value SockDestroy(const Napi::CallbackInfo& info);
Napi::Value UpdateBatches(const Napi::CallbackInfo& info);
Napi::Value PeerCredentials(const Napi::CallbackInfo& info);
Napi::Value UnixSendBuffer(const Napi::CallbackInfo& info);
Napi::Value SockList(const Napi::CallbackInfo& info);
Napi::Value NetnsSocket(const Napi::CallbackInfo& info);
Napi::Value SockmapAttach(const Napi::CallbackInfo& info);
Napi::Value SplicePairFn(const Napi::CallbackInfo& info);
Napi::Value SpliceCutFn(const Napi::CallbackInfo& info);
Napi::Value RelaySocket(const Napi::CallbackInfo& info);

}  // namespace moat
