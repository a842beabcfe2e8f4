// RtnlWatch: an rtnetlink socket subscribed to multicast groups (links, addresses, routes,
// rules), read on the JS thread when libuv reports it readable. Each wake-up drains what is
// queued and hands JS one bitmask of what kinds of objects changed; the messages themselves are
// not decoded here: they only say "look again" (the reader takes a fresh dump). A full receive
// queue (ENOBUFS) means events were lost: that is reported too, so the reader looks anyway.
// With a namespace path, the socket is made inside that network namespace (a socket belongs to
// the namespace it was made in), by a short-lived thread as netnsSocket does.
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "addon.h"
#include "args.h"
#include "errors.h"

namespace moat {

namespace {

// What changed, as JS reads it (src/datapath/rtnl-watch.ts).
constexpr uint32_t kLink = 1;
constexpr uint32_t kAddress = 2;
constexpr uint32_t kRoute = 4;
constexpr uint32_t kRule = 8;
constexpr uint32_t kOverrun = 16;

// Receive queue asked for: a route flap of a few thousand messages fits without loss.
constexpr int kRcvBuf = 4 << 20;
// Reads per wake-up at most: a flood cannot hold the loop; what is left stays readable.
constexpr int kMaxReads = 64;

class RtnlWatch;

struct WatchBox {
  uv_poll_t poll;
  RtnlWatch* owner;
  std::shared_ptr<Registry> registry;
};

uint32_t KindOf(uint16_t type) {
  switch (type) {
    case RTM_NEWLINK:
    case RTM_DELLINK:
      return kLink;
    case RTM_NEWADDR:
    case RTM_DELADDR:
      return kAddress;
    case RTM_NEWROUTE:
    case RTM_DELROUTE:
      return kRoute;
    case RTM_NEWRULE:
    case RTM_DELRULE:
      return kRule;
    default:
      return 0;
  }
}

// Opens and subscribes the socket; on the calling thread, or (nsFd >= 0) in that namespace.
void OpenSocket(int nsFd, const std::vector<uint32_t>& groups, int* fdOut, Failure* failure) {
  if (nsFd >= 0 && setns(nsFd, CLONE_NEWNET) < 0) {
    *failure = Failure("setns", errno);
    return;
  }
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
  if (fd < 0) {
    *failure = Failure("socket(AF_NETLINK)", errno);
    return;
  }
  // root may go past rmem_max; otherwise the kernel caps it, and overruns are reported anyway
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &kRcvBuf, sizeof(kRcvBuf)) < 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &kRcvBuf, sizeof(kRcvBuf));
  sockaddr_nl addr{};
  addr.nl_family = AF_NETLINK;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) {
    *failure = Failure("bind(AF_NETLINK)", errno);
    close(fd);
    return;
  }
  for (uint32_t g : groups) {
    if (setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &g, sizeof(g)) < 0) {
      *failure = Failure("NETLINK_ADD_MEMBERSHIP", errno, std::to_string(g));
      close(fd);
      return;
    }
  }
  *fdOut = fd;
}

class RtnlWatch : public Napi::ObjectWrap<RtnlWatch>, public Closable {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "RtnlWatch", {InstanceMethod<&RtnlWatch::Close>("close")});
  }

  // new RtnlWatch(groups: number[], onChange: (kinds: number) => void, nsPath?: string)
  explicit RtnlWatch(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RtnlWatch>(info) {
    Napi::Env env = info.Env();
    Napi::Value list = Arg(info, 0);
    if (!list.IsArray()) throw Napi::TypeError::New(env, "groups must be an array of numbers");
    std::vector<uint32_t> groups;
    Napi::Array arr = list.As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); i++) {
      uint32_t g = static_cast<uint32_t>(NumberArg(arr.Get(i), "group", 1, 1023));
      groups.push_back(g);
    }
    Napi::Value cb = Arg(info, 1);
    if (!cb.IsFunction()) throw Napi::TypeError::New(env, "onChange must be a function");
    Napi::Value ns = Arg(info, 2);

    int fd = -1;
    Failure failure;
    if (IsNullish(ns)) {
      OpenSocket(-1, groups, &fd, &failure);
    } else {
      std::string path = StringArg(ns, "nsPath");
      int nsFd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (nsFd < 0) ThrowErrno(env, "open", errno, path);
      std::thread worker(OpenSocket, nsFd, std::cref(groups), &fd, &failure);
      worker.join();
      close(nsFd);
      if (fd < 0) failure.detail = path;
    }
    if (fd < 0) Throw(env, failure);

    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
      close(fd);
      throw Napi::Error::New(env, "RtnlWatch: no libuv loop");
    }
    auto* box = new WatchBox();
    box->owner = this;
    box->registry = Data(env).registry;
    int rc = uv_poll_init(loop, &box->poll, fd);
    if (rc != 0) {
      delete box;
      close(fd);
      ThrowErrno(env, "uv_poll_init", -rc);
    }
    box->poll.data = box;
    rc = uv_poll_start(&box->poll, UV_READABLE, OnPoll);
    if (rc != 0) {
      box->owner = nullptr;
      box->registry->closingHandles++;
      uv_close(reinterpret_cast<uv_handle_t*>(&box->poll), OnClosed);
      close(fd);
      ThrowErrno(env, "uv_poll_start", -rc);
    }
    fd_ = fd;
    box_ = box;
    onChange_ = Napi::Persistent(cb.As<Napi::Function>());
    // an open watch keeps itself (and the event loop) alive until closed, like a socket
    self_ = Napi::Persistent(info.This().As<Napi::Object>());
    context_ =
        std::make_unique<Napi::AsyncContext>(env, "moat:RtnlWatch", info.This().As<Napi::Object>());
    registry_ = box->registry;
    registry_->Add(this);
  }

  ~RtnlWatch() override {
    Release();
    if (registry_) registry_->Remove(this);
  }

  void Release() override {
    if (box_ != nullptr) {
      box_->owner = nullptr;
      uv_poll_stop(&box_->poll);
      box_->registry->closingHandles++;
      uv_close(reinterpret_cast<uv_handle_t*>(&box_->poll), OnClosed);
      box_ = nullptr;
    }
    if (fd_ >= 0) {
      close(fd_);
      fd_ = -1;
    }
  }

 private:
  static void OnClosed(uv_handle_t* handle) {
    auto* box = static_cast<WatchBox*>(handle->data);
    std::shared_ptr<Registry> registry = std::move(box->registry);
    delete box;
    registry->HandleClosed();
  }

  static void OnPoll(uv_poll_t* handle, int /*status*/, int /*events*/) {
    auto* box = static_cast<WatchBox*>(handle->data);
    if (box->owner != nullptr) box->owner->DeliverOne();
  }

  // Drains up to kMaxReads datagrams; returns the kinds seen.
  uint32_t Drain() {
    uint32_t kinds = 0;
    for (int i = 0; i < kMaxReads && fd_ >= 0; i++) {
      ssize_t n = recv(fd_, buf_.data(), buf_.size(), MSG_DONTWAIT);
      if (n < 0) {
        if (errno == ENOBUFS) {
          kinds |= kOverrun;
          continue;
        }
        if (errno == EINTR) continue;
        break;  // EAGAIN: empty
      }
      int len = static_cast<int>(n);
      for (auto* h = reinterpret_cast<nlmsghdr*>(buf_.data()); NLMSG_OK(h, len);
           h = NLMSG_NEXT(h, len))
        kinds |= KindOf(h->nlmsg_type);
    }
    return kinds;
  }

  void DeliverOne() {
    uint32_t kinds = Drain();
    if (kinds == 0) return;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    try {
      onChange_.MakeCallback(Value(), {Napi::Number::New(env, kinds)}, *context_);
    } catch (const Napi::Error& e) {
      napi_fatal_exception(env, e.Value());
    }
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Release();
    onChange_.Reset();
    self_.Reset();
    return info.Env().Undefined();
  }

  int fd_ = -1;
  WatchBox* box_ = nullptr;
  std::vector<char> buf_ = std::vector<char>(64 * 1024);
  Napi::FunctionReference onChange_;
  Napi::ObjectReference self_;
  std::unique_ptr<Napi::AsyncContext> context_;
  std::shared_ptr<Registry> registry_;
};

}  // namespace

Napi::Function InitRtnlWatch(Napi::Env env) { return RtnlWatch::Init(env); }

}  // namespace moat
