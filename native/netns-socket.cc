// netnsSocket: a socket made inside another network namespace (a container's), handed to JS as
// an fd (dgram's bind({fd}), net's listen({fd}) or new Socket({fd}) take it). A socket belongs to
// the namespace it was made in for its whole life, so moat can serve a container's loopback and
// reach what only the container reaches. setns changes only the calling thread's namespace: a
// short-lived thread of its own enters the namespace, makes the socket and goes back; the
// caller waits for it (a few system calls).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <thread>

#include "addon.h"
#include "args.h"
#include "errors.h"

namespace moat {

namespace {

struct SocketSpec {
  int type = SOCK_DGRAM;
  sockaddr_storage bind{};
  socklen_t bindLen = 0;
  bool listen = false;
  sockaddr_storage peer{};
  socklen_t peerLen = 0;  // 0: no connect
};

struct SocketResult {
  int fd = -1;
  int port = 0;
  uint64_t cookie = 0;
  Failure failure;
  bool failed = false;
};

socklen_t ParseAddress(Napi::Env env, const std::string& ip, int port, sockaddr_storage* out) {
  std::memset(out, 0, sizeof(*out));
  auto* v4 = reinterpret_cast<sockaddr_in*>(out);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(out);
  if (inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    return sizeof(*v4);
  }
  if (inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    return sizeof(*v6);
  }
  throw Napi::TypeError::New(env, "not an IP address: " + ip);
}

// Runs on the namespace's thread: every step's failure is kept as data for the JS thread.
void MakeSocket(int nsFd, const SocketSpec& spec, SocketResult* r) {
  auto fail = [r](const char* op, int err) {
    r->failure = Failure(op, err);
    r->failed = true;
  };
  int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (home < 0) return fail("open /proc/thread-self/ns/net", errno);
  if (setns(nsFd, CLONE_NEWNET) < 0) {
    fail("setns", errno);
    close(home);
    return;
  }
  int family = spec.bind.ss_family;
  int fd = socket(family, spec.type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    fail("socket", errno);
  } else if (bind(fd, reinterpret_cast<const sockaddr*>(&spec.bind), spec.bindLen) < 0) {
    fail("bind", errno);
  } else if (spec.listen && listen(fd, 511) < 0) {
    fail("listen", errno);
  } else if (spec.peerLen &&
             connect(fd, reinterpret_cast<const sockaddr*>(&spec.peer), spec.peerLen) < 0 &&
             errno != EINPROGRESS) {
    fail("connect", errno);
  }
  if (!r->failed) {
    sockaddr_storage local{};
    socklen_t len = sizeof(local);
    getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len);
    r->port = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&local)->sin_port
                                      : reinterpret_cast<sockaddr_in6*>(&local)->sin6_port);
    socklen_t clen = sizeof(r->cookie);
    if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &r->cookie, &clen) < 0)
      fail("getsockopt SO_NETNS_COOKIE", errno);
  }
  if (r->failed && fd >= 0) close(fd);
  if (!r->failed) r->fd = fd;
  // the thread ends here anyway; going back keeps it harmless if that ever changes
  setns(home, CLONE_NEWNET);
  close(home);
}

}  // namespace

// netnsSocket(nsPath, {type, ip, port, listen?, connect?: {ip, port}}) -> {fd, port, cookie}
Napi::Value NetnsSocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(Arg(info, 0), "nsPath");
  Napi::Value opts = Arg(info, 1);
  SocketSpec spec;
  std::string type = StringArg(OptField(opts, "type"), "type");
  if (type != "udp" && type != "tcp") throw Napi::TypeError::New(env, "type must be udp or tcp");
  spec.type = type == "udp" ? SOCK_DGRAM : SOCK_STREAM;
  int port = static_cast<int>(NumberArg(OptField(opts, "port"), "port", 0, 65535));
  spec.bindLen = ParseAddress(env, StringArg(OptField(opts, "ip"), "ip"), port, &spec.bind);
  Napi::Value listen = OptField(opts, "listen");
  spec.listen = listen.IsBoolean() && listen.As<Napi::Boolean>().Value();
  Napi::Value peer = OptField(opts, "connect");
  if (!IsNullish(peer)) {
    int peerPort = static_cast<int>(NumberArg(OptField(peer, "port"), "connect.port", 1, 65535));
    spec.peerLen =
        ParseAddress(env, StringArg(OptField(peer, "ip"), "connect.ip"), peerPort, &spec.peer);
    if (spec.peer.ss_family != spec.bind.ss_family)
      throw Napi::TypeError::New(env, "ip and connect.ip must be of one family");
  }
  int nsFd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (nsFd < 0) ThrowErrno(env, "open", errno, path);
  SocketResult r;
  std::thread worker(MakeSocket, nsFd, std::cref(spec), &r);
  worker.join();
  close(nsFd);
  if (r.failed) {
    r.failure.detail = path;
    Throw(env, r.failure);
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("fd", Napi::Number::New(env, r.fd));
  out.Set("port", Napi::Number::New(env, r.port));
  out.Set("cookie", Napi::BigInt::New(env, r.cookie));
  return out;
}

}  // namespace moat
