//===- Status.h - errors as values in the runtime ---------------*- C++ -*-===//
//
// The runtime has no LLVM dependency, so it has its own small error types:
// a Status (ok, or a message) and a Result<T> (a value, or a message).
// Messages name the file and say what to change; nothing here throws or
// exits.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_STATUS_H
#define LOOM_RUNTIME_STATUS_H

#include <optional>
#include <string>
#include <utility>

namespace loom {
namespace runtime {

class [[nodiscard]] Status {
public:
  static Status success() { return Status(); }
  static Status error(std::string message) {
    Status s;
    s.message_ = std::move(message);
    s.ok_ = false;
    return s;
  }
  bool ok() const { return ok_; }
  const std::string &message() const { return message_; }

private:
  bool ok_ = true;
  std::string message_;
};

template <typename T> class [[nodiscard]] Result {
public:
  Result(T value) : value_(std::move(value)) {}
  Result(Status error) : error_(std::move(error)) {}
  bool ok() const { return value_.has_value(); }
  const std::string &message() const { return error_.message(); }
  T &operator*() { return *value_; }
  const T &operator*() const { return *value_; }
  T *operator->() { return &*value_; }
  const T *operator->() const { return &*value_; }

private:
  std::optional<T> value_;
  Status error_;
};

} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_STATUS_H
