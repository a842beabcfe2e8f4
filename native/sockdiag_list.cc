// sockList: the sockets of one family and protocol in some states, from a NETLINK_SOCK_DIAG dump
// (SOCK_DIAG_BY_FAMILY, the request `ss` sends): each socket's local end, inode, uid, cookie and
// the cgroup it was made in. The kernel's own record: no text to parse. Acts in the caller's
// network namespace.
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "addon.h"
#include "args.h"
#include "errors.h"

namespace moat {

namespace {

struct Listed {
  uint8_t local[16];
  uint16_t localPort;
  uint8_t state;
  uint32_t ifindex;
  uint32_t uid;
  uint32_t inode;
  uint64_t cookie;
  uint64_t cgroupId;
};

class NetlinkFd {
 public:
  NetlinkFd() : fd_(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG)) {}
  ~NetlinkFd() {
    if (fd_ >= 0) close(fd_);
  }
  NetlinkFd(const NetlinkFd&) = delete;
  NetlinkFd& operator=(const NetlinkFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// one inet_diag_msg of the dump and its attributes
void Parse(const nlmsghdr* h, int family, std::vector<Listed>& out) {
  if (h->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg))) return;
  const auto* m = static_cast<const inet_diag_msg*>(NLMSG_DATA(h));
  Listed s;
  std::memset(&s, 0, sizeof(s));
  if (family == AF_INET) {
    // ipv4 mapped, as the kernel programs see addresses
    s.local[10] = 0xff;
    s.local[11] = 0xff;
    std::memcpy(s.local + 12, m->id.idiag_src, 4);
  } else {
    std::memcpy(s.local, m->id.idiag_src, 16);
  }
  s.localPort = ntohs(m->id.idiag_sport);
  s.state = m->idiag_state;
  s.ifindex = m->id.idiag_if;
  s.uid = m->idiag_uid;
  s.inode = m->idiag_inode;
  s.cookie = static_cast<uint64_t>(m->id.idiag_cookie[1]) << 32 | m->id.idiag_cookie[0];
  int len = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
  for (auto* a = reinterpret_cast<const rtattr*>(m + 1); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
    if (a->rta_type == INET_DIAG_CGROUP_ID && RTA_PAYLOAD(a) >= sizeof(uint64_t))
      std::memcpy(&s.cgroupId, RTA_DATA(a), sizeof(uint64_t));
  }
  out.push_back(s);
}

// the whole dump; 0 or -errno, with the failing step in `op`
int Dump(int family, int protocol, uint32_t states, std::vector<Listed>& out, const char*& op) {
  NetlinkFd fd;
  op = "socket(NETLINK_SOCK_DIAG)";
  if (fd.get() < 0) return -errno;
  timeval timeout = {2, 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));

  struct {
    nlmsghdr nlh;
    inet_diag_req_v2 req;
  } msg;
  std::memset(&msg, 0, sizeof(msg));
  msg.nlh.nlmsg_len = sizeof(msg);
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  msg.nlh.nlmsg_seq = 1;
  msg.req.sdiag_family = static_cast<uint8_t>(family);
  msg.req.sdiag_protocol = static_cast<uint8_t>(protocol);
  msg.req.idiag_states = states;
  sockaddr_nl kernel;
  std::memset(&kernel, 0, sizeof(kernel));
  kernel.nl_family = AF_NETLINK;
  op = "sendto(SOCK_DIAG_BY_FAMILY)";
  if (sendto(fd.get(), &msg, sizeof(msg), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel)) <
      0)
    return -errno;

  op = "recv(SOCK_DIAG_BY_FAMILY)";
  std::vector<char> buf(32768);
  for (;;) {
    ssize_t n = recv(fd.get(), buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (n == 0) return -EPROTO;
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, static_cast<unsigned>(n));
         h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_type == NLMSG_DONE) return 0;
      if (h->nlmsg_type == NLMSG_ERROR) {
        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) return -EPROTO;
        int err = static_cast<const nlmsgerr*>(NLMSG_DATA(h))->error;
        // a protocol the kernel has no diag module for lists nothing
        return err == -ENOENT ? 0 : err;
      }
      if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY) Parse(h, family, out);
    }
  }
}

}  // namespace

// sockList(family: 4|6, protocol, states: bitmask of tcp states) -> [{local: Buffer(16), localPort,
// state, ifindex, uid, inode, cookie: bigint, cgroupId: bigint}]
Napi::Value SockList(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t fam = U32Arg(Arg(info, 0), "family");
  if (fam != 4 && fam != 6) throw Napi::RangeError::New(env, "family must be 4 or 6");
  uint32_t protocol = static_cast<uint32_t>(NumberArg(Arg(info, 1), "protocol", 0, 255));
  uint32_t states = U32Arg(Arg(info, 2), "states");

  std::vector<Listed> sockets;
  const char* op = "";
  int err = Dump(fam == 4 ? AF_INET : AF_INET6, static_cast<int>(protocol), states, sockets, op);
  if (err < 0) ThrowErrno(env, op, -err);

  Napi::Array out = Napi::Array::New(env, sockets.size());
  for (size_t i = 0; i < sockets.size(); i++) {
    const Listed& s = sockets[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("local", Napi::Buffer<uint8_t>::Copy(env, s.local, 16));
    o.Set("localPort", Napi::Number::New(env, s.localPort));
    o.Set("state", Napi::Number::New(env, s.state));
    o.Set("ifindex", Napi::Number::New(env, s.ifindex));
    o.Set("uid", Napi::Number::New(env, s.uid));
    o.Set("inode", Napi::Number::New(env, s.inode));
    o.Set("cookie", Napi::BigInt::New(env, s.cookie));
    o.Set("cgroupId", Napi::BigInt::New(env, s.cgroupId));
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

}  // namespace moat
