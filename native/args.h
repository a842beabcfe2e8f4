// Argument checking and small helpers shared by the wrappers (header-only).
#pragma once

#include <fcntl.h>
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

namespace moat {

// A zeroed libbpf options struct with `sz` set (the C LIBBPF_OPTS macro is not C++).
template <typename T>
T ZeroOpts() {
  T opts;
  std::memset(&opts, 0, sizeof(opts));
  opts.sz = sizeof(opts);
  return opts;
}

inline bool IsNullish(const Napi::Value& v) { return v.IsUndefined() || v.IsNull(); }

inline Napi::Value Arg(const Napi::CallbackInfo& info, size_t i) {
  return i < info.Length() ? info[i] : info.Env().Undefined();
}

inline std::string StringArg(const Napi::Value& v, const char* what) {
  if (!v.IsString()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

inline Napi::Buffer<uint8_t> BufferArg(const Napi::Value& v, const char* what) {
  if (!v.IsBuffer()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a Buffer");
  return v.As<Napi::Buffer<uint8_t>>();
}

inline double NumberArg(const Napi::Value& v, const char* what, double lo, double hi) {
  if (!v.IsNumber()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::floor(d) || d < lo || d > hi)
    throw Napi::RangeError::New(v.Env(), std::string(what) + " must be an integer in [" +
                                             std::to_string(static_cast<int64_t>(lo)) + ", " +
                                             std::to_string(static_cast<int64_t>(hi)) + "]");
  return d;
}

inline uint32_t U32Arg(const Napi::Value& v, const char* what) {
  return static_cast<uint32_t>(NumberArg(v, what, 0, 4294967295.0));
}

inline int32_t I32Arg(const Napi::Value& v, const char* what) {
  return static_cast<int32_t>(NumberArg(v, what, -2147483648.0, 2147483647.0));
}

// An optional property of an options object (undefined when `opts` itself is nullish).
inline Napi::Value OptField(const Napi::Value& opts, const char* key) {
  if (IsNullish(opts)) return opts.Env().Undefined();
  if (!opts.IsObject()) throw Napi::TypeError::New(opts.Env(), "options must be an object");
  return opts.As<Napi::Object>().Get(key);
}

inline uint32_t OptU32(const Napi::Value& opts, const char* key, uint32_t dflt) {
  Napi::Value v = OptField(opts, key);
  return IsNullish(v) ? dflt : U32Arg(v, key);
}

// Duplicates an fd (close-on-exec, never 0-2); -errno on failure.
inline int DupFd(int fd) {
  int d = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  return d < 0 ? -errno : d;
}

}  // namespace moat
