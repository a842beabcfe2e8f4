// peerCredentials: SO_PEERCRED of a connected unix socket, by its fd: who is on the other end
// (pid, uid, gid as the kernel recorded them at connect()). Node has no API for it.
#include <sys/socket.h>

#include <cerrno>

#include "addon.h"
#include "args.h"
#include "errors.h"

namespace moat {

// peerCredentials(fd) -> {pid, uid, gid}
Napi::Value PeerCredentials(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = static_cast<int>(NumberArg(Arg(info, 0), "fd", 0, 2147483647));
  ucred cred;
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
    ThrowErrno(env, "getsockopt SO_PEERCRED", errno);
  Napi::Object out = Napi::Object::New(env);
  out.Set("pid", Napi::Number::New(env, cred.pid));
  out.Set("uid", Napi::Number::New(env, cred.uid));
  out.Set("gid", Napi::Number::New(env, cred.gid));
  return out;
}

}  // namespace moat
