// unixSendBuffer: SO_SNDBUF of a connected unix stream socket, by its fd. Node has no setsockopt
// for net sockets; the API's live subscribers need a kernel buffer larger than the default
// (net.core.wmem_default) so that a client can read on while the daemon's thread is busy.
// TCP sockets are left alone: setting SO_SNDBUF would turn the kernel's autotuning off.
#include <sys/socket.h>

#include <cerrno>

#include "addon.h"
#include "args.h"
#include "errors.h"

namespace moat {

// unixSendBuffer(fd, bytes) -> the socket's SO_SNDBUF after (0: not a unix socket, untouched).
// The kernel caps the request at net.core.wmem_max and doubles it (its own overhead), so
// `bytes` asks for bytes/2 of it: about `bytes` of payload fit.
Napi::Value UnixSendBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = static_cast<int>(NumberArg(Arg(info, 0), "fd", 0, 2147483647));
  int bytes = static_cast<int>(NumberArg(Arg(info, 1), "bytes", 0, 1 << 30));
  int domain = 0;
  socklen_t len = sizeof(domain);
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0)
    ThrowErrno(env, "getsockopt SO_DOMAIN", errno);
  if (domain != AF_UNIX) return Napi::Number::New(env, 0);
  int half = bytes / 2;
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &half, sizeof(half)) < 0)
    ThrowErrno(env, "setsockopt SO_SNDBUF", errno);
  int now = 0;
  len = sizeof(now);
  if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &now, &len) < 0)
    ThrowErrno(env, "getsockopt SO_SNDBUF", errno);
  return Napi::Number::New(env, now);
}

}  // namespace moat
