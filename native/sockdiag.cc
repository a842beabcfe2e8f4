// sockDestroy: SOCK_DESTROY through NETLINK_SOCK_DIAG, the request `ss -K` sends, for one socket
// named by its exact tuple. The kernel aborts it (tcp_abort / udp_abort): a connect() waiting on
// it fails with ECONNABORTED. Needs CONFIG_INET_DIAG_DESTROY and CAP_NET_ADMIN; acts in the
// caller's network namespace.
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "addon.h"
#include "args.h"
#include "errors.h"

namespace moat {

namespace {

// An address field: 4 bytes (IPv4), or 16 (IPv6, or IPv4 mapped when family is 4).
void CopyAddress(const Napi::Value& v, const char* what, int family, __be32 out[4]) {
  Napi::Buffer<uint8_t> b = BufferArg(v, what);
  std::memset(out, 0, 16);
  if (family == AF_INET && b.Length() == 4) {
    std::memcpy(out, b.Data(), 4);
  } else if (family == AF_INET && b.Length() == 16) {
    std::memcpy(out, b.Data() + 12, 4);
  } else if (family == AF_INET6 && b.Length() == 16) {
    std::memcpy(out, b.Data(), 16);
  } else {
    throw Napi::RangeError::New(v.Env(), std::string(what) + " has the wrong length");
  }
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Sends one request and reads its answer: true with the socket's diag message (`found`, for
// SOCK_DIAG_BY_FAMILY) or an ack (SOCK_DESTROY); false when there is no such socket.
bool Exchange(Napi::Env env, int fd, const void* msg, size_t len, const char* what,
              inet_diag_msg* found) {
  sockaddr_nl kernel;
  std::memset(&kernel, 0, sizeof(kernel));
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd, msg, len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel)) < 0)
    ThrowErrno(env, (std::string("sendto(") + what + ")").c_str(), errno);
  alignas(nlmsghdr) char buf[1024];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      ThrowErrno(env, (std::string("recv(") + what + ")").c_str(), errno);
    }
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, static_cast<unsigned>(n));
         h = NLMSG_NEXT(h, n)) {
      if (found && h->nlmsg_type == SOCK_DIAG_BY_FAMILY) {
        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg)))
          ThrowErrno(env, what, EPROTO, "short answer");
        std::memcpy(found, NLMSG_DATA(h), sizeof(*found));
        return true;
      }
      if (h->nlmsg_type != NLMSG_ERROR) continue;
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) ThrowErrno(env, what, EPROTO, "short ack");
      int err = -static_cast<const nlmsgerr*>(NLMSG_DATA(h))->error;
      if (err == 0) return true;
      if (err == ENOENT) return false;
      ThrowErrno(env, what, err,
                 err == EOPNOTSUPP ? "the kernel lacks CONFIG_INET_DIAG_DESTROY" : "");
    }
  }
}

}  // namespace

// sockDestroy({family: 4|6, protocol, local, localPort, remote, remotePort, ifindex?, cookie?})
// -> true when the socket was destroyed, false when there is no such socket.
Napi::Value SockDestroy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Value opts = Arg(info, 0);
  if (!opts.IsObject()) throw Napi::TypeError::New(env, "sockDestroy expects an object");
  uint32_t fam = U32Arg(OptField(opts, "family"), "family");
  if (fam != 4 && fam != 6) throw Napi::RangeError::New(env, "family must be 4 or 6");
  int family = fam == 4 ? AF_INET : AF_INET6;
  uint32_t protocol = U32Arg(OptField(opts, "protocol"), "protocol");
  if (protocol != IPPROTO_TCP && protocol != IPPROTO_UDP)
    throw Napi::RangeError::New(env, "protocol must be tcp (6) or udp (17)");

  struct {
    nlmsghdr nlh;
    inet_diag_req_v2 req;
  } msg;
  std::memset(&msg, 0, sizeof(msg));
  msg.nlh.nlmsg_len = sizeof(msg);
  msg.nlh.nlmsg_type = SOCK_DESTROY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  msg.nlh.nlmsg_seq = 1;
  msg.req.sdiag_family = static_cast<uint8_t>(family);
  msg.req.sdiag_protocol = static_cast<uint8_t>(protocol);
  msg.req.idiag_states = ~0u;
  inet_diag_sockid& id = msg.req.id;
  CopyAddress(OptField(opts, "local"), "local", family, id.idiag_src);
  CopyAddress(OptField(opts, "remote"), "remote", family, id.idiag_dst);
  id.idiag_sport =
      htons(static_cast<uint16_t>(NumberArg(OptField(opts, "localPort"), "localPort", 0, 65535)));
  id.idiag_dport =
      htons(static_cast<uint16_t>(NumberArg(OptField(opts, "remotePort"), "remotePort", 0, 65535)));
  // a socket bound to a device (SO_BINDTODEVICE) is found only with its device
  id.idiag_if = OptU32(opts, "ifindex", 0);
  id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  Napi::Value cookie = OptField(opts, "cookie");
  if (!IsNullish(cookie)) {
    if (!cookie.IsBigInt()) throw Napi::TypeError::New(env, "cookie must be a bigint");
    bool lossless = false;
    uint64_t c = cookie.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) throw Napi::RangeError::New(env, "cookie must fit in 64 bits");
    id.idiag_cookie[0] = static_cast<uint32_t>(c);
    id.idiag_cookie[1] = static_cast<uint32_t>(c >> 32);
  }

  Fd fd(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (fd.get() < 0) ThrowErrno(env, "socket(NETLINK_SOCK_DIAG)", errno);
  timeval timeout = {1, 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));

  // The kernel finds the socket to destroy as it finds a packet's: the connection, else the
  // socket that would take a new one (a TCP listener, an unconnected UDP socket on the port).
  // Destroying that would stop a server for every client, so the socket is looked up first and
  // destroyed by its cookie only when it is this very connection.
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST;
  inet_diag_msg found;
  if (!Exchange(env, fd.get(), &msg, sizeof(msg), "SOCK_DIAG_BY_FAMILY", &found))
    return Napi::Boolean::New(env, false);
  const uint8_t kListen = 10;  // TCP_LISTEN
  // a listener, or an unconnected socket, has no peer port: the kernel found the port's server
  // (an IPv4 connection asked by its mapped address comes back as AF_INET: ports, not addresses,
  // are compared)
  if (found.idiag_state == kListen || found.id.idiag_dport == 0 ||
      found.id.idiag_dport != id.idiag_dport)
    return Napi::Boolean::New(env, false);
  id.idiag_cookie[0] = found.id.idiag_cookie[0];
  id.idiag_cookie[1] = found.id.idiag_cookie[1];
  msg.nlh.nlmsg_type = SOCK_DESTROY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  msg.nlh.nlmsg_seq = 2;
  return Napi::Boolean::New(env,
                            Exchange(env, fd.get(), &msg, sizeof(msg), "SOCK_DESTROY", nullptr));
}

}  // namespace moat
