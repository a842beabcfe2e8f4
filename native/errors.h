// The addon's one error path: errno + op + libbpf's log -> the JS-defined error class.
#pragma once

#include <napi.h>

#include <string>

namespace moat {

// While alive, libbpf output printed on this thread is captured (libbpf_set_print is
// process-wide; the capture target is per thread and per call, so concurrent calls on the
// libuv pool never mix their logs). Scopes nest: the innermost captures.
class LogCapture {
 public:
  LogCapture();
  ~LogCapture();
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  void Append(bool warning, const char* text, size_t len);
  const std::string& text() const { return text_; }
  // First warning line libbpf printed (without the "libbpf: " prefix), or empty.
  const std::string& firstWarning() const { return firstWarning_; }

 private:
  LogCapture* prev_;
  std::string text_;
  std::string firstWarning_;
};

// Routes libbpf's print callback into the current LogCapture (silent outside one).
void InstallLibbpfPrint();

// A failure described as plain data, so it can be made on a worker thread and thrown later.
struct Failure {
  std::string op;
  int err = 0;  // positive errno
  std::string detail;
  std::string log;
  std::string libbpfMessage;

  Failure() = default;
  Failure(std::string op, int err, std::string detail = "", const LogCapture* capture = nullptr);
};

// "EPERM", "ENOENT", ... or "EUNKNOWN".
std::string ErrnoName(int err);

// The JS error object (an instance of the class given to setErrorClass).
Napi::Value MakeError(Napi::Env env, const Failure& f);

// Throws MakeError(...) as a C++ exception (NAPI_CPP_EXCEPTIONS).
[[noreturn]] void Throw(Napi::Env env, const Failure& f);
[[noreturn]] void ThrowErrno(Napi::Env env, const char* op, int err, const std::string& detail = "",
                             const LogCapture* capture = nullptr);

}  // namespace moat
