// RingBuffer: libbpf ring buffer drained on the JS thread when libuv reports its epoll fd
// readable. Records are copied into one packed Buffer per batch (u32 LE length, bytes, zero
// pad to 8) and at most maxBatch records go into a batch, so a flood cannot starve the loop:
// what is left stays readable and the next loop iteration delivers the next batch.
#include <bpf/libbpf.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "addon.h"
#include "args.h"
#include "errors.h"
#include "map.h"

namespace moat {

namespace {

constexpr uint32_t kDefaultMaxBatch = 4096;
constexpr int kBatchFull = -ECANCELED;  // sample callback's "stop here" (record already consumed)

class RingBuffer;

// The poll handle lives apart from the wrapper: uv_close completes on a later loop turn,
// possibly after the wrapper (or, at teardown, the addon instance) is gone.
struct PollBox {
  uv_poll_t poll;
  RingBuffer* owner;
  std::shared_ptr<Registry> registry;
};

class RingBuffer : public Napi::ObjectWrap<RingBuffer>, public Closable {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "RingBuffer",
                       {
                           InstanceMethod<&RingBuffer::Drain>("drain"),
                           InstanceMethod<&RingBuffer::Close>("close"),
                       });
  }

  explicit RingBuffer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RingBuffer>(info) {
    Napi::Env env = info.Env();
    const MapSpec& map = MapArg(env, Arg(info, 0), "map");
    if (map.type != BPF_MAP_TYPE_RINGBUF)
      ThrowErrno(env, "ring_buffer__new", EINVAL,
                 "map '" + map.name + "' is not a BPF_MAP_TYPE_RINGBUF");
    Napi::Value cb = Arg(info, 1);
    if (!cb.IsFunction()) throw Napi::TypeError::New(env, "onBatch must be a function");
    maxBatch_ = OptU32(Arg(info, 2), "maxBatch", kDefaultMaxBatch);
    if (maxBatch_ == 0) throw Napi::RangeError::New(env, "maxBatch must be at least 1");
    name_ = map.name;

    int fd = DupFd(map.fd);
    if (fd < 0) ThrowErrno(env, "dup", -fd, name_);
    LogCapture capture;
    struct ring_buffer* rb = ring_buffer__new(fd, OnSample, this, nullptr);
    if (rb == nullptr) {
      int err = errno;
      close(fd);
      ThrowErrno(env, "ring_buffer__new", err, name_, &capture);
    }
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
      ring_buffer__free(rb);
      close(fd);
      throw Napi::Error::New(env, "RingBuffer: no libuv loop");
    }
    auto* box = new PollBox();
    box->owner = this;
    box->registry = Data(env).registry;
    int rc = uv_poll_init(loop, &box->poll, ring_buffer__epoll_fd(rb));
    if (rc == 0) {
      box->poll.data = box;
      rc = uv_poll_start(&box->poll, UV_READABLE, OnPoll);
      if (rc != 0) {
        box->owner = nullptr;
        box->registry->closingHandles++;
        uv_close(reinterpret_cast<uv_handle_t*>(&box->poll), OnClosed);
      }
    } else {
      delete box;
    }
    if (rc != 0) {
      ring_buffer__free(rb);
      close(fd);
      ThrowErrno(env, "uv_poll_start", -rc, name_);
    }

    rb_ = rb;
    mapFd_ = fd;
    box_ = box;
    onBatch_ = Napi::Persistent(cb.As<Napi::Function>());
    // Open ring buffers stay reachable (like sockets) until closed.
    self_ = Napi::Persistent(info.This().As<Napi::Object>());
    context_ = std::make_unique<Napi::AsyncContext>(env, "moat:RingBuffer",
                                                    info.This().As<Napi::Object>());
    registry_ = box->registry;
    registry_->Add(this);
  }

  ~RingBuffer() override {
    Release();
    if (registry_) registry_->Remove(this);
  }

  // Stops polling and frees the ring; no JS calls (also used at env teardown).
  void Release() override {
    if (box_ != nullptr) {
      box_->owner = nullptr;
      uv_poll_stop(&box_->poll);
      box_->registry->closingHandles++;
      // uv_close removes the fd from libuv's epoll set now; the box is freed in OnClosed.
      uv_close(reinterpret_cast<uv_handle_t*>(&box_->poll), OnClosed);
      box_ = nullptr;
    }
    if (rb_ != nullptr) {
      ring_buffer__free(rb_);
      rb_ = nullptr;
    }
    if (mapFd_ >= 0) {
      close(mapFd_);
      mapFd_ = -1;
    }
  }

 private:
  static void OnClosed(uv_handle_t* handle) {
    auto* box = static_cast<PollBox*>(handle->data);
    std::shared_ptr<Registry> registry = std::move(box->registry);
    delete box;
    registry->HandleClosed();
  }

  static void OnPoll(uv_poll_t* handle, int /*status*/, int /*events*/) {
    auto* box = static_cast<PollBox*>(handle->data);
    if (box->owner != nullptr) box->owner->DeliverOne();
  }

  static int OnSample(void* ctx, void* data, size_t size) {
    auto* self = static_cast<RingBuffer*>(ctx);
    std::vector<uint8_t>& b = self->batch_;
    size_t at = b.size();
    b.resize(at + ((4 + size + 7) & ~static_cast<size_t>(7)), 0);  // zero padding included
    uint32_t len = static_cast<uint32_t>(size);
    std::memcpy(b.data() + at, &len, 4);  // x86-64 / arm64: little endian
    std::memcpy(b.data() + at + 4, data, size);
    return ++self->count_ >= self->maxBatch_ ? kBatchFull : 0;
  }

  // Consumes up to maxBatch records into batch_; returns how many.
  uint32_t Fill() {
    batch_.clear();
    count_ = 0;
    if (rb_ != nullptr) ring_buffer__consume(rb_);  // only our kBatchFull can make it fail
    return count_;
  }

  // Hands the current batch to JS. Returns false if onBatch threw (the error is in `error`).
  bool Deliver(Napi::Env env, uint32_t count, Napi::Value* error) {
    Napi::Buffer<uint8_t> buf = Napi::Buffer<uint8_t>::Copy(env, batch_.data(), batch_.size());
    Napi::Object self = Value();
    try {
      onBatch_.MakeCallback(self, {buf, Napi::Number::New(env, count)}, *context_);
    } catch (const Napi::Error& e) {
      *error = e.Value();
      return false;
    }
    return true;
  }

  // One poll event: one batch at most, then back to the loop.
  void DeliverOne() {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    uint32_t n = Fill();
    if (n == 0) return;
    Napi::Value error;
    if (!Deliver(env, n, &error)) napi_fatal_exception(env, error);
  }

  Napi::Value Drain(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    double total = 0;
    while (rb_ != nullptr) {
      uint32_t n = Fill();
      if (n == 0) break;
      total += n;
      Napi::Value error;
      if (!Deliver(env, n, &error)) throw Napi::Error(env, error);
      if (n < maxBatch_) break;  // the ring was empty when this batch ended
    }
    return Napi::Number::New(env, total);
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Release();
    onBatch_.Reset();
    self_.Reset();
    return info.Env().Undefined();
  }

  struct ring_buffer* rb_ = nullptr;
  int mapFd_ = -1;
  PollBox* box_ = nullptr;
  std::string name_;
  uint32_t maxBatch_ = kDefaultMaxBatch;
  std::vector<uint8_t> batch_;
  uint32_t count_ = 0;
  Napi::FunctionReference onBatch_;
  Napi::ObjectReference self_;
  std::unique_ptr<Napi::AsyncContext> context_;
  std::shared_ptr<Registry> registry_;
};

}  // namespace

Napi::Function InitRingBuffer(Napi::Env env) { return RingBuffer::Init(env); }

}  // namespace moat
