// Status and StatusOr: error values that cross module boundaries instead of exceptions.
//
// A Status is a canonical code (absl's set) plus a human-readable message and, for errors that
// mirror a service's own error names (SQS "ReceiptHandleIsInvalid", Slack "invalid_payload"), that
// name. Status and StatusOr are values: copy them freely; they are not synchronised.
#ifndef TASKPIPE_COMMON_STATUS_H_
#define TASKPIPE_COMMON_STATUS_H_

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace taskpipe {

enum class StatusCode {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

// "InvalidArgument", "NotFound", ...
std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  // An OK status.
  Status() = default;
  // `error_name` is the service's own name for the error, e.g. "TooManyEntriesInBatchRequest".
  Status(StatusCode code, std::string message, std::string error_name = "");

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  const std::string& error_name() const { return error_name_; }

  // "OK", or "InvalidArgument: TooManyEntriesInBatchRequest: at most 10 entries, got 11".
  std::string ToString() const;

  // Returns a copy whose message is prefixed with `context` and ": ".
  Status WithContext(std::string_view context) const;

  friend bool operator==(const Status& a, const Status& b) = default;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
  std::string error_name_;
};

// Constructors for the codes used across the project.
Status CancelledError(std::string message, std::string error_name = "");
Status InvalidArgumentError(std::string message, std::string error_name = "");
Status DeadlineExceededError(std::string message, std::string error_name = "");
Status NotFoundError(std::string message, std::string error_name = "");
Status AlreadyExistsError(std::string message, std::string error_name = "");
Status PermissionDeniedError(std::string message, std::string error_name = "");
Status ResourceExhaustedError(std::string message, std::string error_name = "");
Status FailedPreconditionError(std::string message, std::string error_name = "");
Status OutOfRangeError(std::string message, std::string error_name = "");
Status UnimplementedError(std::string message, std::string error_name = "");
Status InternalError(std::string message, std::string error_name = "");
Status UnavailableError(std::string message, std::string error_name = "");
Status DataLossError(std::string message, std::string error_name = "");
Status UnauthenticatedError(std::string message, std::string error_name = "");

// The one place that decides whether an operation that failed with `status` may be retried:
// kUnavailable (5xx, transport errors), kResourceExhausted (throttling) and kDeadlineExceeded.
bool IsRetryable(const Status& status);

// A value of type T or the error that prevented it. Holding an OK Status without a value is a
// programming error; it is turned into kInternal.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(const Status& status) : status_(status) {  // NOLINT(google-explicit-constructor)
    if (status_.ok()) status_ = InternalError("StatusOr constructed from an OK status without a value");
  }
  StatusOr(Status&& status) : status_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (status_.ok()) status_ = InternalError("StatusOr constructed from an OK status without a value");
  }
  StatusOr(const T& value) : value_(value) {}        // NOLINT(google-explicit-constructor)
  StatusOr(T&& value) : value_(std::move(value)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }

  // REQUIRES: ok().
  T& value() & {
    assert(ok());
    return *value_;
  }
  const T& value() const& {
    assert(ok());
    return *value_;
  }
  T&& value() && {
    assert(ok());
    return std::move(*value_);
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace taskpipe

// Evaluates `expr` (a Status); returns it from the enclosing function if it is not OK.
#define TASKPIPE_RETURN_IF_ERROR(expr)                 \
  do {                                                 \
    ::taskpipe::Status taskpipe_status_ = (expr);      \
    if (!taskpipe_status_.ok()) return taskpipe_status_; \
  } while (0)

#endif  // TASKPIPE_COMMON_STATUS_H_
