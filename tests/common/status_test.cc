#include "common/status.h"

#include <memory>
#include <string>

#include <gtest/gtest.h>

namespace taskpipe {
namespace {

TEST(StatusTest, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kOk);
  EXPECT_EQ(s.ToString(), "OK");
}

TEST(StatusTest, CarriesCodeMessageAndServiceErrorName) {
  Status s = InvalidArgumentError("at most 10 entries, got 11", "TooManyEntriesInBatchRequest");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.error_name(), "TooManyEntriesInBatchRequest");
  EXPECT_EQ(s.ToString(), "InvalidArgument: TooManyEntriesInBatchRequest: at most 10 entries, got 11");
}

TEST(StatusTest, OkCodeDropsMessage) {
  Status s(StatusCode::kOk, "ignored", "Ignored");
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.message(), "");
  EXPECT_EQ(s, Status::Ok());
}

TEST(StatusTest, WithContextPrefixesMessageKeepsCode) {
  Status s = NotFoundError("no such queue", "AWS.SimpleQueueService.NonExistentQueue").WithContext("GetQueueUrl");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "GetQueueUrl: no such queue");
  EXPECT_TRUE(Status::Ok().WithContext("x").ok());
}

TEST(StatusTest, RetryableCodesAreDecidedInOnePlace) {
  EXPECT_TRUE(IsRetryable(UnavailableError("503")));
  EXPECT_TRUE(IsRetryable(ResourceExhaustedError("throttled")));
  EXPECT_TRUE(IsRetryable(DeadlineExceededError("timeout")));
  EXPECT_FALSE(IsRetryable(InvalidArgumentError("bad")));
  EXPECT_FALSE(IsRetryable(PermissionDeniedError("signature")));
  EXPECT_FALSE(IsRetryable(NotFoundError("queue")));
  EXPECT_FALSE(IsRetryable(Status::Ok()));
}

TEST(StatusOrTest, HoldsValue) {
  StatusOr<std::string> v = std::string("hello");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, "hello");
  EXPECT_EQ(v->size(), 5u);
  EXPECT_TRUE(v.status().ok());
}

TEST(StatusOrTest, HoldsError) {
  StatusOr<int> v = UnavailableError("down");
  EXPECT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), StatusCode::kUnavailable);
}

TEST(StatusOrTest, OkStatusWithoutValueBecomesInternalError) {
  StatusOr<int> v = Status::Ok();
  EXPECT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), StatusCode::kInternal);
}

TEST(StatusOrTest, MoveOnlyValue) {
  StatusOr<std::unique_ptr<int>> v = std::make_unique<int>(7);
  ASSERT_TRUE(v.ok());
  std::unique_ptr<int> p = std::move(v).value();
  EXPECT_EQ(*p, 7);
}

Status FailsThenReturnsEarly(bool fail, int* reached) {
  TASKPIPE_RETURN_IF_ERROR(fail ? InternalError("boom") : Status::Ok());
  *reached = 1;
  return Status::Ok();
}

TEST(StatusTest, ReturnIfErrorMacro) {
  int reached = 0;
  EXPECT_EQ(FailsThenReturnsEarly(true, &reached).code(), StatusCode::kInternal);
  EXPECT_EQ(reached, 0);
  EXPECT_TRUE(FailsThenReturnsEarly(false, &reached).ok());
  EXPECT_EQ(reached, 1);
}

}  // namespace
}  // namespace taskpipe
