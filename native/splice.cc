// splicePair: hands two connected TCP sockets of this process to the kernel, so that what each
// receives is sent on by the other without passing through Node (docs/l7-splice.md). The
// sockets are found by their tuple (never by a descriptor from JS) and duplicated: the caller
// closes Node's handles after the call and the pair lives on these duplicates until both
// directions have ended. Modes: "sockmap" (moat_splice_verdict redirects in the kernel; this
// thread only passes FINs on) and "splice" (this thread moves the bytes with splice(2) through
// a pipe). A thread per pair reports the end to JS.
#include <bpf/bpf.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "addon.h"
#include "args.h"
#include "errors.h"
#include "map.h"
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

using Clock = std::chrono::steady_clock;

class SplicePair;
// Live pairs by id, for spliceCut (added and removed on the JS thread).
std::unordered_map<uint32_t, SplicePair*> byId;
uint32_t lastId = 0;
void Forget(SplicePair* pair);

class SplicePair : public Closable {
 public:
  int fd[2] = {-1, -1};  // 0: client, 1: upstream (duplicates, owned)
  uint64_t cookie[2] = {0, 0};
  bool sockmap = false;
  int targets = -1, socks = -1, peers = -1;  // map fds (duplicates, owned) in sockmap mode
  // sockmap mode: what each socket had received and each had been written at insertion
  uint64_t received0[2] = {0, 0};
  bool finBefore[2] = {false, false};
  uint64_t written0[2] = {0, 0};
  uint64_t pending[2] = {0, 0};  // bytes written before the splice, from side i's Node buffer
  uint64_t moved[2] = {0, 0};    // splice mode: bytes from side i to the other
  const char* end = "closed";
  int wake = -1;
  std::mutex wakeLock;  // `wake` is closed by the thread while spliceCut may write to it
  std::atomic<bool> stopping{false};
  std::atomic<bool> cutting{false};
  uint32_t id = 0;
  std::thread thread;
  Napi::ThreadSafeFunction done;
  std::shared_ptr<Registry> registry;

  ~SplicePair() override {
    Release();
    Forget(this);
  }

  // Env teardown or the end: stops the thread and lets the sockets go.
  void Release() override {
    if (thread.joinable()) {
      stopping = true;
      uint64_t one = 1;
      if (write(wake, &one, sizeof(one)) < 0) {
        // the thread also sees `stopping` at its next wake-up
      }
      if (thread.get_id() != std::this_thread::get_id()) thread.join();
    }
    Close();
  }

  // Removes the pair from the maps and closes every descriptor (idempotent).
  void Close() {
    if (sockmap) {
      for (int i = 0; i < 2; i++) {
        bpf_map_delete_elem(socks, &cookie[i]);
        bpf_map_delete_elem(peers, &cookie[i]);
        bpf_map_delete_elem(targets, &cookie[i]);
      }
      sockmap = false;
    }
    std::lock_guard<std::mutex> hold(wakeLock);
    for (int* f : {&fd[0], &fd[1], &targets, &socks, &peers, &wake}) {
      if (*f >= 0) close(*f);
      *f = -1;
    }
  }

  // A reload no longer lets the connection through: the thread resets both sides.
  void Cut() {
    std::lock_guard<std::mutex> hold(wakeLock);
    if (wake < 0) return;
    cutting = true;
    uint64_t one = 1;
    if (write(wake, &one, sizeof(one)) < 0) {
      // the thread also sees `cutting` at its next wake-up
    }
  }

  // Inserts both sockets, writing each side's earlier bytes (`bytes[i]`, from side i, to which
  // what the kernel holds is added) to its peer just before that side is turned on; "" when they
  // are spliced, else why the kernel refused (then `sent[i]` says which were written).
  std::string Insert(std::vector<uint8_t> bytes[2], bool sent[2]) {
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
      if (bpf_map_update_elem(peers, &cookie[i], &p, BPF_ANY) < 0)
        return Undo("splice_peers", errno);
    }
    // the upstream first: the client's earlier bytes (a request) may make the server answer
    // and close at once, and a socket that got its FIN can no longer enter a sockmap
    for (int i : {1, 0}) {
      int other = 1 - i;
      pending[i] = bytes[i].size();
      if (!WriteAll(fd[other], bytes[i].data(), bytes[i].size(), kPendingWriteMs))
        return Undo("writing the bytes read before", errno ? errno : ETIMEDOUT);
      sent[i] = true;
      Baseline(i, other);
      uint64_t value = static_cast<uint64_t>(fd[i]);
      if (bpf_map_update_elem(socks, &cookie[i], &value, BPF_NOEXIST) < 0)
        return Undo(i ? "splice_socks (upstream)" : "splice_socks (client)", errno,
                    TcpState(fd[i]));
    }
    // bytes queued before the insertion wait for a data-ready call: setting the low-water mark
    // makes one now, and the verdict program sends the whole queue on in order
    int one = 1;
    for (int i = 0; i < 2; i++) setsockopt(fd[i], SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one));
    return "";
  }

  void Run() {
    if (sockmap)
      RunSockmap();
    else
      RunSplice();
    Finish();
  }

 private:
  std::string Undo(const char* map, int err, int state = -1) {
    for (int i = 0; i < 2; i++) {
      bpf_map_delete_elem(socks, &cookie[i]);
      bpf_map_delete_elem(peers, &cookie[i]);
      bpf_map_delete_elem(targets, &cookie[i]);
    }
    std::string why = std::string(map) + ": " + std::strerror(err);
    // the kernel takes established sockets only: say when that is why
    return state < 0 ? why : why + " (tcp state " + std::to_string(state) + ")";
  }

  // Bytes side i had received (consumed or queued), read while no byte arrived in between,
  // and bytes written into its peer, before side i is turned on.
  void Baseline(int i, int other) {
    for (int tries = 0; tries < 100; tries++) {
      uint64_t before = BytesReceived(fd[i]);
      int queued = QueuedBytes(fd[i]);
      pollfd p = {fd[i], POLLRDHUP, 0};
      poll(&p, 1, 0);
      if (BytesReceived(fd[i]) != before || queued < 0) continue;
      received0[i] = before - static_cast<uint64_t>(queued);
      finBefore[i] = (p.revents & POLLRDHUP) != 0;
      break;
    }
    written0[other] = BytesWritten(fd[other]);
  }

  uint64_t Redirected(int i) {
    SplicePeer p = {0, 0};
    bpf_map_lookup_elem(peers, &cookie[i], &p);
    return p.bytes;
  }

  // Whether every byte side i received before its FIN is in its peer's socket.
  bool Flushed(int i, uint64_t* progress) {
    uint64_t sent = Redirected(i);
    uint64_t received = BytesReceived(fd[i]) - received0[i] - (finBefore[i] ? 0 : 1);
    uint64_t written = BytesWritten(fd[1 - i]) - written0[1 - i];
    uint64_t now = sent + written;
    if (now != *progress) {
      *progress = now;
      return false;
    }
    return sent >= received && written >= sent;
  }

  void RunSockmap() {
    bool fin[2] = {false, false}, done[2] = {false, false};
    uint64_t progress[2] = {~0ull, ~0ull};
    Clock::time_point stalled[2];
    int waits = 0;
    while (!stopping) {
      pollfd p[3];
      for (int i = 0; i < 2; i++) p[i] = {fd[i], static_cast<short>(fin[i] ? 0 : POLLRDHUP), 0};
      p[2] = {wake, POLLIN, 0};
      // waiting for bytes to reach a peer: look again soon, less often the longer it takes
      bool waiting = (fin[0] && !done[0]) || (fin[1] && !done[1]);
      int timeout = waiting ? std::min(64, 1 << std::min(waits++, 6)) : -1;
      if (!waiting) waits = 0;
      if (poll(p, 3, timeout) < 0 && errno != EINTR) {
        end = "error";
        return;
      }
      if (stopping) break;
      if (cutting) {
        end = "cut";
        return;
      }
      bool reset = (p[0].revents | p[1].revents) & POLLERR;
      for (int i = 0; i < 2; i++) {
        if (!fin[i] && (p[i].revents & (POLLRDHUP | POLLHUP))) {
          fin[i] = true;
          stalled[i] = Clock::now();
        }
        if (!fin[i] || done[i]) continue;
        uint64_t before = progress[i];
        bool flushed = Flushed(i, &progress[i]);
        if (progress[i] != before) stalled[i] = Clock::now();
        if (flushed || Clock::now() - stalled[i] > kFlushStall) {
          shutdown(fd[1 - i], SHUT_WR);
          done[i] = true;
        }
      }
      if (done[0] && done[1]) return;
      // a side that hangs up while its other direction still flows was reset
      for (int i = 0; i < 2; i++)
        if (done[i] && !done[1 - i] && (p[i].revents & POLLHUP)) reset = true;
      if (reset) {
        end = "reset";
        return;
      }
    }
    end = "stopped";
  }

  void RunSplice() {
    int pipes[2][2];
    for (int i = 0; i < 2; i++) {
      if (pipe2(pipes[i], O_NONBLOCK | O_CLOEXEC) < 0) {
        end = "error";
        if (i == 1) close(pipes[0][0]), close(pipes[0][1]);
        return;
      }
    }
    size_t inPipe[2] = {0, 0};
    bool eof[2] = {false, false}, done[2] = {false, false};
    constexpr unsigned kFlags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
    while (!stopping && !(done[0] && done[1])) {
      pollfd p[3];
      for (int i = 0; i < 2; i++) p[i] = {fd[i], 0, 0};
      for (int i = 0; i < 2; i++) {
        if (!eof[i] && inPipe[i] == 0) p[i].events |= POLLIN | POLLRDHUP;
        if (inPipe[i] > 0) p[1 - i].events |= POLLOUT;
      }
      p[2] = {wake, POLLIN, 0};
      if (poll(p, 3, -1) < 0 && errno != EINTR) {
        end = "error";
        break;
      }
      if (stopping) break;
      if (cutting) {
        end = "cut";
        break;
      }
      bool reset = (p[0].revents | p[1].revents) & POLLERR;
      for (int i = 0; i < 2 && !reset; i++) {
        int out = fd[1 - i];
        // move what there is: socket -> pipe -> peer, until one of them would block
        for (;;) {
          if (inPipe[i] == 0 && !eof[i]) {
            ssize_t n = splice(fd[i], nullptr, pipes[i][1], nullptr, 1 << 20, kFlags);
            if (n == 0) eof[i] = true;
            if (n < 0 && errno != EAGAIN && errno != EINTR) reset = true;
            if (n <= 0) break;
            inPipe[i] = static_cast<size_t>(n);
          }
          ssize_t m = splice(pipes[i][0], nullptr, out, nullptr, inPipe[i], kFlags);
          if (m < 0 && errno != EAGAIN && errno != EINTR) reset = true;
          if (m <= 0) break;
          inPipe[i] -= static_cast<size_t>(m);
          moved[i] += static_cast<uint64_t>(m);
          if (inPipe[i] > 0) continue;
        }
        if (eof[i] && inPipe[i] == 0 && !done[i]) {
          shutdown(out, SHUT_WR);
          done[i] = true;
        }
      }
      for (int i = 0; i < 2; i++)
        if (done[i] && !done[1 - i] && (p[i].revents & POLLHUP) && !(p[i].revents & POLLIN))
          reset = true;
      if (reset) {
        end = "reset";
        break;
      }
    }
    if (stopping) end = "stopped";
    for (auto& pp : pipes) close(pp[0]), close(pp[1]);
  }

  // The end: counts, a reset passed on as a reset, the sockets closed; then JS is told.
  void Finish() {
    if (sockmap) {
      moved[0] = Redirected(0);
      moved[1] = Redirected(1);
    }
    if (std::strcmp(end, "reset") == 0 || std::strcmp(end, "cut") == 0) {
      linger hard = {1, 0};
      for (int i = 0; i < 2; i++) setsockopt(fd[i], SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
    }
    if (stopping) return;
    Close();
    done.BlockingCall(this, [](Napi::Env env, Napi::Function cb, SplicePair* pair) {
      Napi::Object out = Napi::Object::New(env);
      out.Set("toUpstream",
              Napi::Number::New(env, static_cast<double>(pair->pending[0] + pair->moved[0])));
      out.Set("toClient",
              Napi::Number::New(env, static_cast<double>(pair->pending[1] + pair->moved[1])));
      out.Set("end", Napi::String::New(env, pair->end));
      // the thread has nothing left to do but return
      if (pair->thread.joinable()) pair->thread.join();
      pair->registry->Remove(pair);
      pair->done.Release();
      delete pair;
      cb.Call({out});
    });
  }
};

void Forget(SplicePair* pair) { byId.erase(pair->id); }

bool TupleArg(const Napi::Value& v, const char* what, SocketTuple* t) {
  if (!v.IsObject()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be an object");
  Napi::Object o = v.As<Napi::Object>();
  std::string local = StringArg(o.Get("localAddress"), "localAddress");
  std::string remote = StringArg(o.Get("remoteAddress"), "remoteAddress");
  t->localPort = static_cast<uint16_t>(NumberArg(o.Get("localPort"), "localPort", 1, 65535));
  t->remotePort = static_cast<uint16_t>(NumberArg(o.Get("remotePort"), "remotePort", 1, 65535));
  return ParseAddress(local, t->local) && ParseAddress(remote, t->remote);
}

int DupMap(Napi::Env env, const Napi::Value& maps, const char* name) {
  int fd = fcntl(MapArg(env, maps.As<Napi::Object>().Get(name), name).fd, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(env, "fcntl(F_DUPFD_CLOEXEC)", errno, name);
  return fd;
}

}  // namespace

// sockmapAttach(programFd, map): the stream verdict program of a sockmap/sockhash (stays
// attached while the map lives).
Napi::Value SockmapAttach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int prog = static_cast<int>(NumberArg(Arg(info, 0), "programFd", 0, 2147483647));
  const MapSpec& map = MapArg(env, Arg(info, 1), "map");
  LogCapture capture;
  if (bpf_prog_attach(prog, map.fd, BPF_SK_SKB_STREAM_VERDICT, 0) < 0)
    ThrowErrno(env, "bpf_prog_attach(sk_skb_stream_verdict)", errno, "", &capture);
  return env.Undefined();
}

// splicePair({client, upstream, toUpstream, toClient, mode, maps}, onEnd) -> {mode, refused?}
Napi::Value SplicePairFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Value opts = Arg(info, 0);
  Napi::Value onEnd = Arg(info, 1);
  if (!opts.IsObject() || !onEnd.IsFunction())
    throw Napi::TypeError::New(env, "splicePair expects (options, onEnd)");
  Napi::Object o = opts.As<Napi::Object>();
  SocketTuple tuples[2];
  if (!TupleArg(o.Get("client"), "client", &tuples[0]) ||
      !TupleArg(o.Get("upstream"), "upstream", &tuples[1]))
    throw Napi::TypeError::New(env, "splicePair: an address is not an IP address");
  Napi::Buffer<uint8_t> toPeer[2] = {BufferArg(o.Get("toUpstream"), "toUpstream"),
                                     BufferArg(o.Get("toClient"), "toClient")};
  std::string mode = StringArg(o.Get("mode"), "mode");
  if (mode != "sockmap" && mode != "splice")
    throw Napi::TypeError::New(env, "mode must be \"sockmap\" or \"splice\"");

  auto* pair = new SplicePair();
  const char* names[2] = {"client", "upstream"};
  for (int i = 0; i < 2; i++) {
    pair->fd[i] = FindSocket(tuples[i]);
    if (pair->fd[i] < 0) {
      delete pair;
      ThrowErrno(env, "splicePair", ENOENT,
                 std::string("no socket of this process has the ") + names[i] + "'s addresses");
    }
  }
  // what Node read from one side and nobody wrote yet goes first to the other
  std::vector<uint8_t> bytes[2];
  bool sent[2] = {false, false};
  for (int i = 0; i < 2; i++)
    bytes[i].assign(toPeer[i].Data(), toPeer[i].Data() + toPeer[i].Length());
  pair->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  std::string refused;
  if (mode == "sockmap") {
    Napi::Value maps = o.Get("maps");
    if (!maps.IsObject()) {
      delete pair;
      throw Napi::TypeError::New(env, "sockmap mode needs maps");
    }
    pair->targets = DupMap(env, maps, "targets");
    pair->socks = DupMap(env, maps, "socks");
    pair->peers = DupMap(env, maps, "peers");
    refused = pair->Insert(bytes, sent);
    pair->sockmap = refused.empty();
  }
  for (int i = 0; i < 2; i++) {
    if (sent[i]) continue;
    pair->pending[i] = bytes[i].size();
    if (!WriteAll(pair->fd[1 - i], bytes[i].data(), bytes[i].size(), kPendingWriteMs)) {
      int err = errno ? errno : ETIMEDOUT;
      delete pair;
      ThrowErrno(env, "splicePair", err,
                 std::string("writing the bytes read before to ") + names[1 - i]);
    }
  }
  pair->registry = Data(env).registry;
  pair->registry->Add(pair);
  pair->done = Napi::ThreadSafeFunction::New(env, onEnd.As<Napi::Function>(), "moat-splice", 0, 1);
  pair->id = ++lastId;
  byId[pair->id] = pair;
  pair->thread = std::thread([pair] { pair->Run(); });

  Napi::Object out = Napi::Object::New(env);
  out.Set("mode", Napi::String::New(env, pair->sockmap ? "sockmap" : "splice"));
  out.Set("id", Napi::Number::New(env, pair->id));
  if (!refused.empty()) out.Set("refused", Napi::String::New(env, refused));
  return out;
}

// spliceCut(id): resets both sides of a spliced pair; a pair that already ended is ignored.
Napi::Value SpliceCutFn(const Napi::CallbackInfo& info) {
  auto id = static_cast<uint32_t>(NumberArg(Arg(info, 0), "id", 1, 4294967295.0));
  auto found = byId.find(id);
  if (found != byId.end()) found->second->Cut();
  return info.Env().Undefined();
}

}  // namespace moat
