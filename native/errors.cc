// Errors: map errno to a stable code, attach libbpf's captured log, build the JS error.
#include "errors.h"

#include <bpf/libbpf.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <vector>

#include "addon.h"

namespace moat {

namespace {

thread_local LogCapture* tCurrent = nullptr;

// The verifier log can be megabytes; its verdict is at the end, so keep the tail.
constexpr size_t kMaxLog = 2u << 20;

int PrintToCapture(enum libbpf_print_level level, const char* fmt, va_list ap) {
  LogCapture* capture = tCurrent;
  if (capture == nullptr || level == LIBBPF_DEBUG) return 0;
  char small[1024];
  va_list copy;
  va_copy(copy, ap);
  int n = vsnprintf(small, sizeof(small), fmt, ap);
  if (n < 0) {
    va_end(copy);
    return 0;
  }
  if (static_cast<size_t>(n) < sizeof(small)) {
    capture->Append(level == LIBBPF_WARN, small, static_cast<size_t>(n));
  } else {
    std::vector<char> big(static_cast<size_t>(n) + 1);
    vsnprintf(big.data(), big.size(), fmt, copy);
    capture->Append(level == LIBBPF_WARN, big.data(), static_cast<size_t>(n));
  }
  va_end(copy);
  return n;
}

}  // namespace

LogCapture::LogCapture() : prev_(tCurrent) { tCurrent = this; }

LogCapture::~LogCapture() { tCurrent = prev_; }

void LogCapture::Append(bool warning, const char* text, size_t len) {
  if (warning && firstWarning_.empty()) {
    std::string line(text, len);
    size_t nl = line.find('\n');
    if (nl != std::string::npos) line.resize(nl);
    const char prefix[] = "libbpf: ";
    if (line.compare(0, sizeof(prefix) - 1, prefix) == 0) line.erase(0, sizeof(prefix) - 1);
    firstWarning_ = line;
  }
  text_.append(text, len);
  if (text_.size() > kMaxLog) text_.erase(0, text_.size() - kMaxLog);
}

void InstallLibbpfPrint() { libbpf_set_print(PrintToCapture); }

Failure::Failure(std::string op_, int err_, std::string detail_, const LogCapture* capture)
    : op(std::move(op_)), err(err_ < 0 ? -err_ : err_), detail(std::move(detail_)) {
  if (capture != nullptr) {
    log = capture->text();
    libbpfMessage = capture->firstWarning();
  }
}

std::string ErrnoName(int err) {
  if (err < 0) err = -err;
  // Kernel-internal codes that leak through the bpf() syscall.
  switch (err) {
    case 512:
      return "ERESTARTSYS";
    case 524:
      return "ENOTSUPP";
    default:
      break;
  }
  const char* name = strerrorname_np(err);
  return name != nullptr ? name : "EUNKNOWN";
}

static std::string Describe(int err) {
  if (err == 524) return "Operation not supported";
  char buf[128];
  // GNU strerror_r returns the message (maybe not in buf).
  return strerror_r(err, buf, sizeof(buf));
}

Napi::Value MakeError(Napi::Env env, const Failure& f) {
  std::string code = ErrnoName(f.err);
  std::string message = f.op;
  if (!f.detail.empty()) message += " " + f.detail;
  message += ": " + Describe(f.err) + " (" + code + ")";
  if (!f.libbpfMessage.empty()) message += "; libbpf: " + f.libbpfMessage;

  Napi::Object fields = Napi::Object::New(env);
  fields.Set("code", code);
  fields.Set("errno", f.err);
  fields.Set("op", f.op);
  if (!f.log.empty()) fields.Set("log", f.log);

  AddonData& data = Data(env);
  if (!data.errorClass.IsEmpty()) {
    return data.errorClass.New({Napi::String::New(env, message), fields});
  }
  // Before setErrorClass (only the loader's own bootstrap): a plain Error with the same fields.
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", fields.Get("code"));
  e.Set("errno", fields.Get("errno"));
  e.Set("op", fields.Get("op"));
  if (!f.log.empty()) e.Set("log", fields.Get("log"));
  return e.Value();
}

void Throw(Napi::Env env, const Failure& f) { throw Napi::Error(env, MakeError(env, f)); }

void ThrowErrno(Napi::Env env, const char* op, int err, const std::string& detail,
                const LogCapture* capture) {
  Throw(env, Failure(op, err, detail, capture));
}

}  // namespace moat
