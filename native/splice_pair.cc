// One spliced pair's state machine (splice_pair.h), run by the splice loop's thread.
#include "splice_pair.h"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <poll.h>
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
constexpr int kPendingWriteMs = 5000;
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
    refused = Insert();
    sockmap = refused.empty();
  }
  if (!sockmap) {
    for (int i = 0; i < 2; i++) {
      if (!WritePending(i)) {
        end = "reset";
        return false;
      }
    }
    for (auto& p : pipes_) {
      if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0) {
        end = "error";
        return false;
      }
      fcntl(p[1], F_SETPIPE_SZ, kPipeBytes);  // a smaller pipe only costs more calls
    }
  }
  for (auto& b : bytes) std::vector<uint8_t>().swap(b);
  return true;
}

bool SplicePair::WritePending(int i) {
  if (bytes[i].empty()) return true;
  pending[i] = bytes[i].size();
  bool ok = WriteAll(fd[1 - i], bytes[i].data(), bytes[i].size(), kPendingWriteMs);
  bytes[i].clear();
  return ok;
}

// Inserts both sockets, writing each side's earlier bytes (`bytes[i]`, from side i, to which
// what the kernel holds is added) to its peer just before that side is turned on; "" when they
// are spliced, else why the kernel refused (the bytes not written yet stay in `bytes`).
std::string SplicePair::Insert() {
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
  // the upstream first: the client's earlier bytes (a request) may make the server answer
  // and close at once, and a socket that got its FIN can no longer enter a sockmap
  for (int i : {1, 0}) {
    int other = 1 - i;
    if (!WritePending(i)) return Undo("writing the bytes read before", errno ? errno : ETIMEDOUT);
    Baseline(i, other);
    uint64_t value = static_cast<uint64_t>(fd[i]);
    if (bpf_map_update_elem(socks, &cookie[i], &value, BPF_NOEXIST) < 0)
      return Undo(i ? "splice_socks (upstream)" : "splice_socks (client)", errno, TcpState(fd[i]));
  }
  // bytes queued before the insertion wait for a data-ready call: setting the low-water mark
  // makes one now, and the verdict program sends the whole queue on in order
  int one = 1;
  for (int i = 0; i < 2; i++) setsockopt(fd[i], SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one));
  return "";
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

bool SplicePair::Step() { return sockmap ? StepSockmap() : StepSplice(); }

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
