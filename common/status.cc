#include "common/status.h"

namespace taskpipe {

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kCancelled: return "Cancelled";
    case StatusCode::kUnknown: return "Unknown";
    case StatusCode::kInvalidArgument: return "InvalidArgument";
    case StatusCode::kDeadlineExceeded: return "DeadlineExceeded";
    case StatusCode::kNotFound: return "NotFound";
    case StatusCode::kAlreadyExists: return "AlreadyExists";
    case StatusCode::kPermissionDenied: return "PermissionDenied";
    case StatusCode::kResourceExhausted: return "ResourceExhausted";
    case StatusCode::kFailedPrecondition: return "FailedPrecondition";
    case StatusCode::kAborted: return "Aborted";
    case StatusCode::kOutOfRange: return "OutOfRange";
    case StatusCode::kUnimplemented: return "Unimplemented";
    case StatusCode::kInternal: return "Internal";
    case StatusCode::kUnavailable: return "Unavailable";
    case StatusCode::kDataLoss: return "DataLoss";
    case StatusCode::kUnauthenticated: return "Unauthenticated";
  }
  return "Unknown";
}

Status::Status(StatusCode code, std::string message, std::string error_name)
    : code_(code), message_(std::move(message)), error_name_(std::move(error_name)) {
  if (code_ == StatusCode::kOk) {
    message_.clear();
    error_name_.clear();
  }
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string out(StatusCodeName(code_));
  if (!error_name_.empty()) {
    out += ": ";
    out += error_name_;
  }
  if (!message_.empty()) {
    out += ": ";
    out += message_;
  }
  return out;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  std::string message(context);
  message += ": ";
  message += message_;
  return Status(code_, std::move(message), error_name_);
}

#define TASKPIPE_DEFINE_ERROR(Name, Code)                           \
  Status Name(std::string message, std::string error_name) {        \
    return Status(StatusCode::Code, std::move(message), std::move(error_name)); \
  }
TASKPIPE_DEFINE_ERROR(CancelledError, kCancelled)
TASKPIPE_DEFINE_ERROR(InvalidArgumentError, kInvalidArgument)
TASKPIPE_DEFINE_ERROR(DeadlineExceededError, kDeadlineExceeded)
TASKPIPE_DEFINE_ERROR(NotFoundError, kNotFound)
TASKPIPE_DEFINE_ERROR(AlreadyExistsError, kAlreadyExists)
TASKPIPE_DEFINE_ERROR(PermissionDeniedError, kPermissionDenied)
TASKPIPE_DEFINE_ERROR(ResourceExhaustedError, kResourceExhausted)
TASKPIPE_DEFINE_ERROR(FailedPreconditionError, kFailedPrecondition)
TASKPIPE_DEFINE_ERROR(OutOfRangeError, kOutOfRange)
TASKPIPE_DEFINE_ERROR(UnimplementedError, kUnimplemented)
TASKPIPE_DEFINE_ERROR(InternalError, kInternal)
TASKPIPE_DEFINE_ERROR(UnavailableError, kUnavailable)
TASKPIPE_DEFINE_ERROR(DataLossError, kDataLoss)
TASKPIPE_DEFINE_ERROR(UnauthenticatedError, kUnauthenticated)
#undef TASKPIPE_DEFINE_ERROR

bool IsRetryable(const Status& status) {
  switch (status.code()) {
    case StatusCode::kUnavailable:
    case StatusCode::kResourceExhausted:
    case StatusCode::kDeadlineExceeded:
      return true;
    default:
      return false;
  }
}

}  // namespace taskpipe
