// One spliced pair's state machine (splice_pair.h), run by the splice loop's thread.
#include "splice_pair.h"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "splice_socket.h"

namespace moat {

namespace {

// struct moat_splice_peer (bpf/include/moat_abi.h)
struct SplicePeer {
  uint64_t peer;
  uint64_t bytes;
};

// A FIN is passed on once its bytes reached the peer; without progress for this long, anyway.
constexpr auto kFlushStall = std::chrono::seconds(10);
// splice(2) mode: a larger pipe moves more per call (the default holds 16 pages)
constexpr int kPipeBytes = 1 << 20;

void CloseFd(int* f) {
  if (*f >= 0) close(*f);
  *f = -1;
}

}  // namespace

SplicePair::~SplicePair() {
  LeaveMaps();
  for (int* f : {&fd[0], &fd[1], &targets, &socks, &peers}) CloseFd(f);
  for (auto& p : pipes_) CloseFd(&p[0]), CloseFd(&p[1]);
}

bool SplicePair::Start() {
  if (targets >= 0) {
    refused = Prepare();
    if (refused.empty()) {
      next_ = 1;
      return true;
    }
  }
  return ToSplice();
}

uint32_t SplicePair::Events() const {
  // sockmap: only the FINs come here (write room would wake the loop for every ack)
  return EPOLLET | EPOLLRDHUP | (sockmap ? 0 : EPOLLIN | EPOLLOUT);
}

// splice(2) from here on: the kernel refused the sockmap, or it was not asked for. The bytes
// read before and not written yet stay in `bytes` (StepSplice writes them first).
bool SplicePair::ToSplice() {
  next_ = -1;
  sockmap = false;
  started = true;
  for (auto& p : pipes_) {
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0) {
      end = "error";
      return false;
    }
    fcntl(p[1], F_SETPIPE_SZ, kPipeBytes);  // a smaller pipe only costs more calls
  }
  return true;
}

// Writes what is left of side i's earlier bytes to the other side, as much as it takes now;
// true once all are written. `failed`: the other side is gone.
bool SplicePair::Flush(int i, bool* failed) {
  while (sent_[i] < bytes[i].size()) {
    ssize_t n = send(fd[1 - i], bytes[i].data() + sent_[i], bytes[i].size() - sent_[i],
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sent_[i] += static_cast<size_t>(n);
      pending[i] += static_cast<uint64_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) *failed = true;
    return false;
  }
  if (!bytes[i].empty()) std::vector<uint8_t>().swap(bytes[i]);
  sent_[i] = 0;
  return true;
}

// Both sockets become targets, what the kernel holds is read out and the peer records are
// written; "" when that is done, else why the kernel refused.
std::string SplicePair::Prepare() {
  uint64_t* cookie = cookie_;
  for (int i = 0; i < 2; i++) {
    cookie[i] = SocketCookie(fd[i]);
    if (cookie[i] == 0) return "no socket cookie";
  }
  // targets first: a redirect never finds its peer missing
  for (int i = 0; i < 2; i++) {
    uint64_t value = static_cast<uint64_t>(fd[i]);
    if (bpf_map_update_elem(targets, &cookie[i], &value, BPF_NOEXIST) < 0)
      return Undo(i ? "splice_targets (upstream)" : "splice_targets (client)", errno,
                  TcpState(fd[i]));
  }
  // what the kernel holds: the verdict program would be handed the first queued skb whole,
  // also the part of it Node already read
  for (int i = 0; i < 2; i++)
    if (!DrainQueued(fd[i], &bytes[i])) return Undo("reading the queued bytes", errno);
  for (int i = 0; i < 2; i++) {
    SplicePeer p = {cookie[1 - i], 0};
    if (bpf_map_update_elem(peers, &cookie[i], &p, BPF_ANY) < 0) return Undo("splice_peers", errno);
  }
  return "";
}

// The sockmap set-up, one side at a time, the upstream first: the client's earlier bytes (a
// request) may make the server answer and close at once, and a socket that got its FIN can no
// longer enter a sockmap. A side enters splice_socks once its earlier bytes (from Node and from
// the kernel's queue) are written to its peer: what the kernel redirects comes after them. A
// peer that takes them slowly holds this pair only (the loop is woken when it has room).
bool SplicePair::StepInsert() {
  pollfd p[2] = {{fd[0], 0, 0}, {fd[1], 0, 0}};
  poll(p, 2, 0);
  if ((p[0].revents | p[1].revents) & (POLLERR | POLLHUP)) {
    end = "reset";
    return true;
  }
  while (next_ >= 0) {
    int i = next_;
    bool failed = false;
    if (!Flush(i, &failed)) {
      if (!failed) return false;  // no room yet
      end = "reset";
      return true;
    }
    Baseline(i, 1 - i);
    uint64_t value = static_cast<uint64_t>(fd[i]);
    if (bpf_map_update_elem(socks, &cookie_[i], &value, BPF_NOEXIST) < 0) {
      refused =
          Undo(i ? "splice_socks (upstream)" : "splice_socks (client)", errno, TcpState(fd[i]));
      return !ToSplice() || StepSplice();
    }
    next_ = i == 1 ? 0 : -1;
  }
  // bytes queued before the insertion wait for a data-ready call: setting the low-water mark
  // makes one now, and the verdict program sends the whole queue on in order
  int one = 1;
  for (int i = 0; i < 2; i++) setsockopt(fd[i], SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one));
  // the kernel sends what it redirects one fragment (a received packet) at a time: with
  // Nagle's algorithm (the relay turned it off for its own writes) they leave in full segments
  int zero = 0;
  for (int i = 0; i < 2; i++) setsockopt(fd[i], IPPROTO_TCP, TCP_NODELAY, &zero, sizeof(zero));
  sockmap = true;
  started = true;
  return StepSockmap();
}

std::string SplicePair::Undo(const char* map, int err, int state) {
  LeaveMaps();
  std::string why = std::string(map) + ": " + std::strerror(err);
  // the kernel takes established sockets only: say when that is why
  return state < 0 ? why : why + " (tcp state " + std::to_string(state) + ")";
}

// Removes the pair from the maps (idempotent: a missing entry is no error).
void SplicePair::LeaveMaps() {
  if (targets < 0) return;
  for (uint64_t& cookie : cookie_) {
    if (cookie == 0) continue;
    bpf_map_delete_elem(socks, &cookie);
    bpf_map_delete_elem(peers, &cookie);
    bpf_map_delete_elem(targets, &cookie);
    cookie = 0;
  }
}

// Bytes side i had received (consumed or queued), read while no byte arrived in between,
// and bytes written into its peer, before side i is turned on.
void SplicePair::Baseline(int i, int other) {
  for (int tries = 0; tries < 100; tries++) {
    uint64_t before = BytesReceived(fd[i]);
    int queued = QueuedBytes(fd[i]);
    pollfd p = {fd[i], POLLRDHUP, 0};
    poll(&p, 1, 0);
    if (BytesReceived(fd[i]) != before || queued < 0) continue;
    received0_[i] = before - static_cast<uint64_t>(queued);
    finBefore_[i] = (p.revents & POLLRDHUP) != 0;
    break;
  }
  written0_[other] = BytesWritten(fd[other]);
}

uint64_t SplicePair::Redirected(int i) {
  SplicePeer p = {0, 0};
  bpf_map_lookup_elem(peers, &cookie_[i], &p);
  return p.bytes;
}

// Whether every byte side i received before its FIN is in its peer's socket.
bool SplicePair::Flushed(int i, uint64_t* progress) {
  uint64_t sent = Redirected(i);
  uint64_t received = BytesReceived(fd[i]) - received0_[i] - (finBefore_[i] ? 0 : 1);
  uint64_t written = BytesWritten(fd[1 - i]) - written0_[1 - i];
  uint64_t now = sent + written;
  if (now != *progress) {
    *progress = now;
    return false;
  }
  return sent >= received && written >= sent;
}

bool SplicePair::Step() {
  if (next_ >= 0) return StepInsert();
  return sockmap ? StepSockmap() : StepSplice();
}

bool SplicePair::StepSockmap() {
  pollfd p[2];
  for (int i = 0; i < 2; i++) p[i] = {fd[i], static_cast<short>(fin_[i] ? 0 : POLLRDHUP), 0};
  poll(p, 2, 0);
  bool reset = (p[0].revents | p[1].revents) & POLLERR;
  for (int i = 0; i < 2; i++) {
    if (!fin_[i] && (p[i].revents & (POLLRDHUP | POLLHUP))) {
      fin_[i] = true;
      stalled_[i] = Clock::now();
    }
    if (!fin_[i] || done_[i]) continue;
    uint64_t before = progress_[i];
    bool flushed = Flushed(i, &progress_[i]);
    if (progress_[i] != before) stalled_[i] = Clock::now();
    if (flushed || Clock::now() - stalled_[i] > kFlushStall) {
      shutdown(fd[1 - i], SHUT_WR);
      done_[i] = true;
    }
  }
  if (done_[0] && done_[1]) return true;
  // a side that hangs up while its other direction still flows was reset
  for (int i = 0; i < 2; i++)
    if (done_[i] && !done_[1 - i] && (p[i].revents & POLLHUP)) reset = true;
  if (reset) {
    end = "reset";
    return true;
  }
  // waiting for bytes to reach a peer: look again soon, less often the longer it takes
  waiting = (fin_[0] && !done_[0]) || (fin_[1] && !done_[1]);
  if (waiting)
    due = Clock::now() + std::chrono::milliseconds(std::min(64, 1 << std::min(waits_++, 6)));
  else
    waits_ = 0;
  return false;
}

bool SplicePair::StepSplice() {
  pollfd p[2];
  for (int i = 0; i < 2; i++) p[i] = {fd[i], POLLIN | POLLRDHUP, 0};
  poll(p, 2, 0);
  bool reset = (p[0].revents | p[1].revents) & POLLERR;
  constexpr unsigned kFlags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
  for (int i = 0; i < 2 && !reset; i++) {
    int out = fd[1 - i];
    // the bytes read before go first; until they are out, this direction waits for room
    if (!Flush(i, &reset)) continue;
    // move what there is: socket -> pipe -> peer, until one of them would block (the loop is
    // edge-triggered: it is woken again only by new bytes or new room)
    for (;;) {
      if (inPipe_[i] == 0 && !eof_[i]) {
        ssize_t n = splice(fd[i], nullptr, pipes_[i][1], nullptr, kPipeBytes, kFlags);
        if (n == 0) eof_[i] = true;
        if (n < 0 && errno != EAGAIN && errno != EINTR) reset = true;
        if (n <= 0) break;
        inPipe_[i] = static_cast<size_t>(n);
      }
      ssize_t m = splice(pipes_[i][0], nullptr, out, nullptr, inPipe_[i], kFlags);
      if (m < 0 && errno != EAGAIN && errno != EINTR) reset = true;
      if (m <= 0) break;
      inPipe_[i] -= static_cast<size_t>(m);
      moved[i] += static_cast<uint64_t>(m);
    }
    if (eof_[i] && inPipe_[i] == 0 && !done_[i]) {
      shutdown(out, SHUT_WR);
      done_[i] = true;
    }
  }
  if (done_[0] && done_[1] && !reset) return true;
  for (int i = 0; i < 2; i++)
    if (done_[i] && !done_[1 - i] && (p[i].revents & POLLHUP) && !(p[i].revents & POLLIN))
      reset = true;
  if (reset) {
    end = "reset";
    return true;
  }
  return false;
}

void SplicePair::Finish() {
  if (sockmap) {
    moved[0] = Redirected(0);
    moved[1] = Redirected(1);
  }
  if (std::strcmp(end, "reset") == 0 || std::strcmp(end, "cut") == 0) {
    linger hard = {1, 0};
    for (int i = 0; i < 2; i++) setsockopt(fd[i], SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
  }
  LeaveMaps();
  for (int* f : {&fd[0], &fd[1], &targets, &socks, &peers}) CloseFd(f);
  for (auto& p : pipes_) CloseFd(&p[0]), CloseFd(&p[1]);
}

}  // namespace moat
