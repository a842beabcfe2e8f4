// Finds a socket of this process by its tuple, and reads the counts the splice waits on.
#include "splice_socket.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace moat {

namespace {

bool FromSockaddr(const sockaddr_storage& ss, uint8_t out[16], uint16_t* port) {
  if (ss.ss_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(&ss);
    std::memset(out, 0, 10);
    out[10] = out[11] = 0xff;
    std::memcpy(out + 12, &sin->sin_addr, 4);
    *port = ntohs(sin->sin_port);
    return true;
  }
  if (ss.ss_family == AF_INET6) {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    std::memcpy(out, &sin6->sin6_addr, 16);
    *port = ntohs(sin6->sin6_port);
    return true;
  }
  return false;
}

bool Matches(int fd, const SocketTuple& t) {
  int type = 0;
  socklen_t len = sizeof(type);
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM) return false;
  sockaddr_storage ss;
  uint8_t addr[16];
  uint16_t port = 0;
  len = sizeof(ss);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) < 0) return false;
  if (!FromSockaddr(ss, addr, &port) || port != t.localPort || std::memcmp(addr, t.local, 16))
    return false;
  len = sizeof(ss);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) < 0) return false;
  return FromSockaddr(ss, addr, &port) && port == t.remotePort && !std::memcmp(addr, t.remote, 16);
}

bool Info(int fd, tcp_info* info) {
  socklen_t len = sizeof(*info);
  std::memset(info, 0, sizeof(*info));
  return getsockopt(fd, IPPROTO_TCP, TCP_INFO, info, &len) == 0;
}

}  // namespace

bool ParseAddress(const std::string& text, uint8_t out[16]) {
  in_addr v4;
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    std::memset(out, 0, 10);
    out[10] = out[11] = 0xff;
    std::memcpy(out + 12, &v4, 4);
    return true;
  }
  return inet_pton(AF_INET6, text.c_str(), out) == 1;
}

int FindSocket(const SocketTuple& tuple) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int self = dirfd(dir);
  int found = -1;
  char link[64];
  while (dirent* e = readdir(dir)) {
    char* end = nullptr;
    long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd == self) continue;
    // only sockets: a getsockname on anything else would fail anyway, this is cheaper
    ssize_t n = readlinkat(self, e->d_name, link, sizeof(link) - 1);
    if (n < 8 || std::strncmp(link, "socket:[", 8) != 0) continue;
    if (!Matches(static_cast<int>(fd), tuple)) continue;
    found = fcntl(static_cast<int>(fd), F_DUPFD_CLOEXEC, 0);
    break;
  }
  closedir(dir);
  return found;
}

int DupSocket(int fd, const SocketTuple& tuple) {
  return Matches(fd, tuple) ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
}

uint64_t SocketCookie(int fd) {
  uint64_t cookie = 0;
  socklen_t len = sizeof(cookie);
  if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) < 0) return 0;
  return cookie;
}

uint64_t BytesReceived(int fd) {
  tcp_info info;
  return Info(fd, &info) ? info.tcpi_bytes_received : 0;
}

uint64_t BytesWritten(int fd) {
  for (int tries = 0; tries < 100; tries++) {
    tcp_info a, b;
    int outq = 0;
    if (!Info(fd, &a) || ioctl(fd, SIOCOUTQ, &outq) < 0 || !Info(fd, &b)) return 0;
    if (a.tcpi_bytes_acked == b.tcpi_bytes_acked)
      return b.tcpi_bytes_acked + static_cast<uint64_t>(outq);
  }
  return 0;
}

int TcpState(int fd) {
  tcp_info info;
  return Info(fd, &info) ? info.tcpi_state : -1;
}

int QueuedBytes(int fd) {
  int n = 0;
  return ioctl(fd, SIOCINQ, &n) < 0 ? -1 : n;
}

bool DrainQueued(int fd, std::vector<uint8_t>* out) {
  for (;;) {
    size_t at = out->size();
    out->resize(at + (256 << 10));
    ssize_t n = recv(fd, out->data() + at, 256 << 10, MSG_DONTWAIT);
    out->resize(at + (n > 0 ? static_cast<size_t>(n) : 0));
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    return n == 0 || errno == EAGAIN || errno == EWOULDBLOCK;
  }
}

}  // namespace moat
