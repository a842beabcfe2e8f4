// splicePair: hands two connected TCP sockets of this process to the kernel, so that what each
// receives is sent on by the other without passing through Node (docs/l7-splice.md). The caller
// passes each socket's descriptor (checked against the addresses Node reports; without one, the
// socket is found by its addresses among this process's descriptors) and the addon keeps a
// duplicate: the caller closes Node's handles after the call and the pair lives on these
// duplicates until both directions have ended. One loop thread (epoll) runs every pair: it
// inserts the pair into the sockmap (moat_splice_verdict then redirects in the kernel and the
// loop only passes FINs on) or, when the kernel refuses, moves the bytes with splice(2) through
// a pipe; it tells JS how the pair started and how it ended. The JS thread's part of a splice
// is a few system calls.
#include <bpf/bpf.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
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
#include "splice_pair.h"
#include "splice_socket.h"

namespace moat {

namespace {

using Clock = SplicePair::Clock;

// What the loop tells JS about a pair: how it started, then how it ended.
struct Message {
  uint32_t id;
  bool started;
  std::string mode, refused;
  const char* end;
  uint64_t toUpstream, toClient;
};

struct Callbacks {
  Napi::FunctionReference onStart, onEnd;
};

class SpliceLoop : public Closable {
 public:
  // JS thread only: the callbacks of the pairs that have not ended, by id
  std::unordered_map<uint32_t, Callbacks> callbacks;
  uint32_t lastId = 0;

  ~SpliceLoop() override { Release(); }

  // Hands a pair to the loop thread (JS thread).
  void Add(SplicePair* pair, Callbacks cb) {
    callbacks.emplace(pair->id, std::move(cb));
    if (callbacks.size() == 1) tell_.Ref(env_);
    {
      std::lock_guard<std::mutex> hold(lock_);
      incoming_.push_back(pair);
    }
    Wake();
  }

  // A reload no longer lets the connection through: the loop resets both sides (JS thread).
  void Cut(uint32_t id) {
    if (!callbacks.count(id)) return;
    {
      std::lock_guard<std::mutex> hold(lock_);
      cuts_.push_back(id);
    }
    Wake();
  }

  // Env teardown: stops the thread and lets every socket go (no JS is called).
  void Release() override {
    if (thread_.joinable()) {
      stopping_ = true;
      Wake();
      thread_.join();
    }
    for (auto& [id, pair] : pairs_) delete pair;
    pairs_.clear();
    for (SplicePair* pair : incoming_) delete pair;
    incoming_.clear();
    for (int* f : {&epoll_, &wake_}) {
      if (*f >= 0) close(*f);
      *f = -1;
    }
    if (loop_ == this) loop_ = nullptr;
  }

  // The env's loop (one addon instance per process).
  static SpliceLoop* loop_;

 private:
  napi_env env_ = nullptr;
  int epoll_ = -1, wake_ = -1;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::mutex lock_;
  std::vector<SplicePair*> incoming_;
  std::vector<uint32_t> cuts_;
  // loop thread only
  std::unordered_map<uint32_t, SplicePair*> pairs_;
  Napi::ThreadSafeFunction tell_;

  void Wake() {
    uint64_t one = 1;
    if (write(wake_, &one, sizeof(one)) < 0) {
      // the counter is already non-zero: the loop wakes anyway
    }
  }

  void Run() {
    epoll_event events[64];
    while (!stopping_) {
      int n = epoll_wait(epoll_, events, 64, Timeout());
      if (n < 0 && errno != EINTR) break;
      if (stopping_) break;
      std::vector<uint32_t> touched;
      for (int k = 0; k < n; k++) {
        if (events[k].data.ptr == nullptr) {
          uint64_t count;
          if (read(wake_, &count, sizeof(count)) < 0) {
            // EAGAIN: another wake-up took it
          }
          continue;
        }
        touched.push_back(static_cast<SplicePair::Side*>(events[k].data.ptr)->pair->id);
      }
      Intake(&touched);
      auto now = Clock::now();
      for (auto& [id, pair] : pairs_)
        if (pair->waiting && pair->due <= now) touched.push_back(id);
      std::sort(touched.begin(), touched.end());
      touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
      // by id: a pair may have ended since its event (cut)
      for (uint32_t id : touched) {
        auto found = pairs_.find(id);
        if (found == pairs_.end()) continue;
        SplicePair* pair = found->second;
        if (pair->Step() || !Settled(pair)) End(pair);
      }
    }
  }

  // New pairs start; cut pairs end. Started pairs are stepped once (bytes may be there).
  void Intake(std::vector<uint32_t>* touched) {
    std::vector<SplicePair*> fresh;
    std::vector<uint32_t> cuts;
    {
      std::lock_guard<std::mutex> hold(lock_);
      fresh.swap(incoming_);
      cuts.swap(cuts_);
    }
    for (SplicePair* pair : fresh) {
      pairs_[pair->id] = pair;
      if (!pair->Start() || !Settled(pair)) {
        End(pair);
        continue;
      }
      touched->push_back(pair->id);
    }
    for (uint32_t id : cuts) {
      auto found = pairs_.find(id);
      if (found == pairs_.end()) continue;
      found->second->end = "cut";
      End(found->second);
    }
  }

  // After a start or a step: JS is told once the mode is settled, and the epoll registration
  // follows what the pair needs (edge-triggered: a pair is stepped when a side gets bytes, room
  // or a FIN, and steps move everything there is). False when epoll refused (`end` says so).
  bool Settled(SplicePair* pair) {
    if (pair->started && !pair->told) TellStart(pair);
    uint32_t events = pair->Events();
    if (events == pair->watched) return true;
    int op = pair->watched == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    for (int i = 0; i < 2; i++) {
      epoll_event ev = {};
      ev.events = events;
      ev.data.ptr = &pair->side[i];
      if (epoll_ctl(epoll_, op, pair->fd[i], &ev) < 0) {
        pair->end = "error";
        return false;
      }
    }
    pair->watched = events;
    return true;
  }

  void TellStart(SplicePair* pair) {
    pair->told = true;
    Tell(new Message{pair->id, true, pair->sockmap ? "sockmap" : "splice", pair->refused, nullptr,
                     0, 0});
  }

  void End(SplicePair* pair) {
    // a pair that ends before its mode settled (its earlier bytes never written): JS learns
    // what it was trying
    if (!pair->told) {
      if (pair->targets >= 0 && pair->refused.empty()) pair->sockmap = true;
      TellStart(pair);
    }
    // Node's descriptor of the same socket may still be open: leave epoll before closing
    for (int f : pair->fd)
      if (f >= 0) epoll_ctl(epoll_, EPOLL_CTL_DEL, f, nullptr);
    pair->Finish();
    Tell(new Message{pair->id, false, "", "", pair->end, pair->pending[0] + pair->moved[0],
                     pair->pending[1] + pair->moved[1]});
    pairs_.erase(pair->id);
    delete pair;
  }

  void Tell(Message* m) {
    if (tell_.NonBlockingCall(m, Deliver) != napi_ok) delete m;
  }

  static void Deliver(Napi::Env env, Napi::Function, Message* m);

  int Timeout() {
    bool any = false;
    Clock::time_point first;
    for (auto& [id, pair] : pairs_) {
      if (!pair->waiting) continue;
      if (!any || pair->due < first) first = pair->due;
      any = true;
    }
    if (!any) return -1;
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(first - Clock::now()).count();
    return static_cast<int>(std::max<int64_t>(0, ms + 1));
  }

  friend SpliceLoop* OpenLoop(Napi::Env env);
};

SpliceLoop* SpliceLoop::loop_ = nullptr;
SpliceLoop*& loop = SpliceLoop::loop_;

void SpliceLoop::Deliver(Napi::Env env, Napi::Function, Message* m) {
  std::unique_ptr<Message> hold(m);
  if (loop == nullptr) return;
  auto found = loop->callbacks.find(m->id);
  if (found == loop->callbacks.end()) return;
  Napi::Object out = Napi::Object::New(env);
  if (m->started) {
    out.Set("mode", Napi::String::New(env, m->mode));
    if (!m->refused.empty()) out.Set("refused", Napi::String::New(env, m->refused));
    found->second.onStart.Call({out});
    return;
  }
  out.Set("toUpstream", Napi::Number::New(env, static_cast<double>(m->toUpstream)));
  out.Set("toClient", Napi::Number::New(env, static_cast<double>(m->toClient)));
  out.Set("end", Napi::String::New(env, m->end));
  Napi::FunctionReference onEnd = std::move(found->second.onEnd);
  loop->callbacks.erase(found);
  if (loop->callbacks.empty()) loop->tell_.Unref(env);
  onEnd.Call({out});
}

SpliceLoop* OpenLoop(Napi::Env env) {
  if (loop != nullptr) return loop;
  auto* l = new SpliceLoop();
  l->env_ = env;
  l->epoll_ = epoll_create1(EPOLL_CLOEXEC);
  l->wake_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;
  if (l->epoll_ < 0 || l->wake_ < 0 || epoll_ctl(l->epoll_, EPOLL_CTL_ADD, l->wake_, &ev) < 0) {
    int err = errno;
    delete l;
    ThrowErrno(env, "splicePair", err, "the splice loop");
  }
  l->tell_ = Napi::ThreadSafeFunction::New(
      env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}), "moat-splice", 0, 1);
  l->tell_.Unref(env);
  l->thread_ = std::thread([l] { l->Run(); });
  Data(env).registry->Add(l);
  loop = l;
  return l;
}

bool TupleArg(const Napi::Value& v, const char* what, SocketTuple* t, int* fd) {
  if (!v.IsObject()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be an object");
  Napi::Object o = v.As<Napi::Object>();
  std::string local = StringArg(o.Get("localAddress"), "localAddress");
  std::string remote = StringArg(o.Get("remoteAddress"), "remoteAddress");
  t->localPort = static_cast<uint16_t>(NumberArg(o.Get("localPort"), "localPort", 1, 65535));
  t->remotePort = static_cast<uint16_t>(NumberArg(o.Get("remotePort"), "remotePort", 1, 65535));
  Napi::Value f = o.Get("fd");
  *fd = f.IsUndefined() ? -1 : static_cast<int>(NumberArg(f, "fd", 0, 2147483647));
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

// splicePair({client, upstream, toUpstream, toClient, mode, maps}, onStart, onEnd) -> id
Napi::Value SplicePairFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Value opts = Arg(info, 0);
  Napi::Value onStart = Arg(info, 1);
  Napi::Value onEnd = Arg(info, 2);
  if (!opts.IsObject() || !onStart.IsFunction() || !onEnd.IsFunction())
    throw Napi::TypeError::New(env, "splicePair expects (options, onStart, onEnd)");
  Napi::Object o = opts.As<Napi::Object>();
  SocketTuple tuples[2];
  int given[2];
  if (!TupleArg(o.Get("client"), "client", &tuples[0], &given[0]) ||
      !TupleArg(o.Get("upstream"), "upstream", &tuples[1], &given[1]))
    throw Napi::TypeError::New(env, "splicePair: an address is not an IP address");
  Napi::Buffer<uint8_t> toPeer[2] = {BufferArg(o.Get("toUpstream"), "toUpstream"),
                                     BufferArg(o.Get("toClient"), "toClient")};
  std::string mode = StringArg(o.Get("mode"), "mode");
  if (mode != "sockmap" && mode != "splice")
    throw Napi::TypeError::New(env, "mode must be \"sockmap\" or \"splice\"");
  Napi::Value maps = o.Get("maps");
  if (mode == "sockmap" && !maps.IsObject())
    throw Napi::TypeError::New(env, "sockmap mode needs maps");
  SpliceLoop* l = OpenLoop(env);

  auto* pair = new SplicePair();
  const char* names[2] = {"client", "upstream"};
  for (int i = 0; i < 2; i++) {
    // the descriptor given, when it is that socket; else found by its addresses
    pair->fd[i] = given[i] >= 0 ? DupSocket(given[i], tuples[i]) : -1;
    if (pair->fd[i] < 0) pair->fd[i] = FindSocket(tuples[i]);
    if (pair->fd[i] < 0) {
      delete pair;
      ThrowErrno(env, "splicePair", ENOENT,
                 std::string("no socket of this process has the ") + names[i] + "'s addresses");
    }
  }
  // what Node read from one side and nobody wrote yet goes first to the other
  for (int i = 0; i < 2; i++)
    pair->bytes[i].assign(toPeer[i].Data(), toPeer[i].Data() + toPeer[i].Length());
  if (mode == "sockmap") {
    try {
      pair->targets = DupMap(env, maps, "targets");
      pair->socks = DupMap(env, maps, "socks");
      pair->peers = DupMap(env, maps, "peers");
    } catch (...) {
      delete pair;
      throw;
    }
  }
  pair->id = ++l->lastId;
  l->Add(pair, {Napi::Persistent(onStart.As<Napi::Function>()),
                Napi::Persistent(onEnd.As<Napi::Function>())});
  return Napi::Number::New(env, pair->id);
}

// spliceCut(id): resets both sides of a spliced pair; a pair that already ended is ignored.
Napi::Value SpliceCutFn(const Napi::CallbackInfo& info) {
  auto id = static_cast<uint32_t>(NumberArg(Arg(info, 0), "id", 1, 4294967295.0));
  if (loop != nullptr) loop->Cut(id);
  return info.Env().Undefined();
}

}  // namespace moat
