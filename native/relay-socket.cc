// relaySocket: a TCP socket for moat's L7 relay, made with its record in the socket storage map
// `socks` already written (the relay's decision: rule, verdict, generation, destination), so
// moat's hooks pass its connection as the relay decided before any packet leaves. The record is
// keyed by the socket itself, so it needs neither the source address nor the port (the route
// chooses them at connect()), and it goes away with the socket.
#include <bpf/bpf.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "addon.h"
#include "args.h"
#include "errors.h"
#include "map.h"

namespace moat {

// relaySocket(socks: BpfMap, family: 4|6, record: Buffer) -> fd (for net.Socket({fd}))
Napi::Value RelaySocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const MapSpec& map = MapArg(env, Arg(info, 0), "socks");
  uint32_t fam = U32Arg(Arg(info, 1), "family");
  if (fam != 4 && fam != 6) throw Napi::RangeError::New(env, "family must be 4 or 6");
  Napi::Buffer<uint8_t> record = BufferArg(Arg(info, 2), "record");
  if (map.type != BPF_MAP_TYPE_SK_STORAGE || record.Length() != map.valueSize)
    throw Napi::TypeError::New(env, "socks must be a socket storage map of the record's size");
  int fd = socket(fam == 4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) ThrowErrno(env, "socket", errno, "");
  if (bpf_map_update_elem(map.fd, &fd, record.Data(), BPF_NOEXIST) < 0) {
    int err = errno;
    close(fd);
    ThrowErrno(env, "bpf_map_update_elem", err, "socks");
  }
  return Napi::Number::New(env, fd);
}

}  // namespace moat
