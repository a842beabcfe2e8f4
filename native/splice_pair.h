// One spliced pair of sockets (docs/l7-splice.md): its descriptors, how it moves bytes
// ("sockmap": moat_splice_verdict redirects in the kernel, only FINs are passed on here;
// "splice": splice(2) through a pipe each way) and where it stands. Everything here runs on the
// splice loop's thread (splice.cc), which calls Start once, then Step on each readiness change
// or due check, until Step returns true (ended); then Finish. Nothing here waits: the bytes
// Node read before are written as the peer takes them, and a side enters the sockmap once
// its earlier bytes are out.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace moat {

class SplicePair {
 public:
  using Clock = std::chrono::steady_clock;

  // One side's epoll registration: which pair, which side.
  struct Side {
    SplicePair* pair;
    int index;
  };

  uint32_t id = 0;
  int fd[2] = {-1, -1};  // 0: client, 1: upstream (duplicates, owned)
  Side side[2] = {{this, 0}, {this, 1}};
  // the splice maps (duplicates, owned) when the kernel redirect is wanted; -1: splice(2)
  int targets = -1, socks = -1, peers = -1;
  // what Node read from side i and nobody wrote yet: written to the other side first
  std::vector<uint8_t> bytes[2];
  bool sockmap = false;
  // the mode is settled (sockmap: both sides inserted; splice: set up), and whether the loop
  // told JS; the epoll events the loop registered
  bool started = false, told = false;
  uint32_t watched = 0;
  std::string refused;  // why the kernel refused the sockmap
  const char* end = "closed";
  uint64_t pending[2] = {0, 0};  // bytes written at the start, from side i's Node buffer
  uint64_t moved[2] = {0, 0};    // bytes from side i to the other after the start
  // sockmap mode, waiting for a FIN's bytes to reach the peer: when to look again
  bool waiting = false;
  Clock::time_point due;

  ~SplicePair();

  // Prepares the sockmap (when the maps are there: targets and peers), else sets up splice(2).
  // False when the pair cannot go on (`end` says why).
  bool Start();
  // The epoll events (edge-triggered) the pair needs now.
  uint32_t Events() const;
  // Moves what there is / passes FINs on; true once the pair has ended (`end` says how).
  bool Step();
  // The end: counts, a reset passed on as a reset (SO_LINGER 0), maps left, fds closed.
  void Finish();

 private:
  // sockmap mode: what each socket had received and each had been written at insertion
  uint64_t cookie_[2] = {0, 0};
  uint64_t received0_[2] = {0, 0};
  bool finBefore_[2] = {false, false};
  uint64_t written0_[2] = {0, 0};
  bool fin_[2] = {false, false}, done_[2] = {false, false};
  uint64_t progress_[2] = {~0ull, ~0ull};
  Clock::time_point stalled_[2];
  int waits_ = 0;
  // splice mode
  int pipes_[2][2] = {{-1, -1}, {-1, -1}};
  size_t inPipe_[2] = {0, 0};
  bool eof_[2] = {false, false};

  // sockmap set-up: the side whose earlier bytes are written and which enters splice_socks
  // next (the upstream, then the client); -1 when not inserting
  int next_ = -1;
  size_t sent_[2] = {0, 0};  // of bytes[i], written to the other side

  std::string Prepare();
  bool StepInsert();
  bool ToSplice();
  bool Flush(int i, bool* failed);
  std::string Undo(const char* map, int err, int state = -1);
  void Baseline(int i, int other);
  uint64_t Redirected(int i);
  bool Flushed(int i, uint64_t* progress);
  bool StepSockmap();
  bool StepSplice();
  void LeaveMaps();
};

}  // namespace moat
