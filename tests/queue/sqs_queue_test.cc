#include "queue/sqs_queue.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <future>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "aws/sigv4.h"
#include "net/curl_http_client.h"
#include "queue/validate.h"
#include "tests/fakes/fake_clock.h"
#include "tests/testing/http_test_server.h"
#include "tests/testing/run_process.h"

// Two kinds of tests:
//  - SqsQueueTest: against a real moto_server (TASKPIPE_TEST_SQS_ENDPOINT, started by
//    scripts/test.sh), each for both protocols;
//  - SqsQueueFaultTest: against tests/testing/http_test_server.h, which answers as SQS would or
//    injects faults (5xx, throttling, resets, HTML pages, truncated bodies, hangs).
// Real-time waits only where the server forces them (long polls, 1 s visibility and delay).

namespace taskpipe {
namespace {

using namespace std::chrono_literals;
using ::taskpipe::testing::HttpTestReply;
using ::taskpipe::testing::HttpTestRequest;
using ::taskpipe::testing::HttpTestServer;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using ::testing::UnorderedElementsAre;

constexpr char kRegion[] = "us-east-1";

// A test-only provider: the signature is not checked by moto or the test server.
class TestCredentials final : public CredentialsProvider {
 public:
  StatusOr<AwsCredentials> Get() override {
    ++calls_;
    return AwsCredentials{"AKIDTAKSPIPETEST", "test-secret-access-key", ""};
  }
  int calls() const { return calls_.load(); }

 private:
  std::atomic<int> calls_{0};
};

// Forwards to a real client and counts the exchanges.
class CountingHttpClient final : public HttpClient {
 public:
  explicit CountingHttpClient(HttpClient& base) : base_(base) {}
  StatusOr<HttpResponse> Send(const HttpRequest& request) override {
    ++count_;
    return base_.Send(request);
  }
  void Shutdown() override { base_.Shutdown(); }
  int count() const { return count_.load(); }

 private:
  HttpClient& base_;
  std::atomic<int> count_{0};
};

std::unique_ptr<HttpClient> NewLoopbackClient() {
  CurlHttpClientOptions options;
  options.proxy = "";  // libcurl 7.88 does not exempt loopback from http_proxy
  StatusOr<std::unique_ptr<HttpClient>> client = NewCurlHttpClient(options);
  EXPECT_TRUE(client.ok()) << client.status().ToString();
  return std::move(client).value();
}

std::chrono::milliseconds Since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
}

ReceiveOptions Options(int max_messages, std::chrono::seconds wait = 0s,
                       std::optional<std::chrono::seconds> visibility = std::nullopt) {
  ReceiveOptions options;
  options.max_messages = max_messages;
  options.wait = wait;
  options.visibility_timeout = visibility;
  return options;
}

OutgoingMessage Message(std::string body, std::chrono::seconds delay = 0s) {
  OutgoingMessage m;
  m.body = std::move(body);
  m.delay = delay;
  return m;
}

MessageAttribute StringAttribute(std::string type, std::string value) {
  MessageAttribute a;
  a.data_type = std::move(type);
  a.string_value = std::move(value);
  return a;
}

MessageAttribute BinaryAttribute(std::string type, std::string value) {
  MessageAttribute a;
  a.data_type = std::move(type);
  a.binary_value = std::move(value);
  return a;
}

// ---------------------------------------------------------------------------------------------
// Against moto_server.

std::string SqsEndpoint() {
  const char* endpoint = std::getenv("TASKPIPE_TEST_SQS_ENDPOINT");
  return endpoint == nullptr ? "" : endpoint;
}

class SqsQueueTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    endpoint_ = SqsEndpoint();
    ASSERT_FALSE(endpoint_.empty())
        << "TASKPIPE_TEST_SQS_ENDPOINT is not set: the SQS tests need a moto_server. Run them with "
           "scripts/test.sh, which starts one, or start `moto_server -H 127.0.0.1 -p PORT` and export "
           "TASKPIPE_TEST_SQS_ENDPOINT=http://127.0.0.1:PORT";
    http_ = NewLoopbackClient();
    counting_ = std::make_unique<CountingHttpClient>(*http_);
  }

  // A raw JSON-protocol call for what the Queue interface does not do (CreateQueue, queue ARNs).
  nlohmann::json Admin(const std::string& action, const nlohmann::json& body) {
    SigningRequest signing;
    signing.method = "POST";
    signing.url = endpoint_ + "/";
    signing.headers = {{"Content-Type", "application/x-amz-json-1.0"}, {"X-Amz-Target", "AmazonSQS." + action}};
    signing.body = body.dump();
    StatusOr<std::vector<std::pair<std::string, std::string>>> signature =
        SignV4(signing, *credentials_.Get(), kRegion, "sqs", std::chrono::system_clock::now());
    EXPECT_TRUE(signature.ok()) << signature.status().ToString();
    HttpRequest request;
    request.method = "POST";
    request.url = signing.url;
    request.headers = signing.headers;
    for (auto& h : *signature) request.headers.push_back(h);
    request.body = signing.body;
    StatusOr<HttpResponse> response = http_->Send(request);
    EXPECT_TRUE(response.ok()) << response.status().ToString();
    if (!response.ok()) return nullptr;
    EXPECT_EQ(response->status, 200) << action << ": " << response->body;
    return nlohmann::json::parse(response->body, nullptr, false);
  }

  // A fresh queue whose name is unique to this test and protocol; returns its URL.
  std::string CreateQueue(std::string suffix = "", std::map<std::string, std::string> attributes = {}) {
    static std::atomic<int> counter{0};
    const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string(info->name()).substr(0, 30) + "-" + std::to_string(getpid()) + "-" +
                       std::to_string(++counter) + suffix;
    for (char& c : name) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') c = '_';
    }
    nlohmann::json body = {{"QueueName", name}};
    if (!attributes.empty()) body["Attributes"] = attributes;
    nlohmann::json reply = Admin("CreateQueue", body);
    return reply.is_object() && reply.contains("QueueUrl") ? reply["QueueUrl"].get<std::string>() : "";
  }

  std::string QueueArn(const std::string& url) {
    nlohmann::json reply = Admin("GetQueueAttributes", {{"QueueUrl", url}, {"AttributeNames", {"QueueArn"}}});
    return reply["Attributes"]["QueueArn"].get<std::string>();
  }

  SqsQueueOptions BaseOptions() {
    SqsQueueOptions options;
    options.endpoint = endpoint_;
    options.region = kRegion;
    options.protocol = GetParam();
    options.receive_proxy = "";
    options.retry_base = 1ms;
    options.retry_throttling_base = 1ms;
    return options;
  }

  std::unique_ptr<Queue> Open(const std::string& url) {
    SqsQueueOptions options = BaseOptions();
    options.queue_url = url;
    StatusOr<std::unique_ptr<Queue>> queue = NewSqsQueue(options, *counting_, credentials_, RealClock());
    EXPECT_TRUE(queue.ok()) << queue.status().ToString();
    return queue.ok() ? std::move(*queue) : nullptr;
  }

  std::vector<ReceivedMessage> Receive(Queue& queue, const ReceiveOptions& options) {
    StatusOr<std::vector<ReceivedMessage>> got = queue.Receive(options);
    EXPECT_TRUE(got.ok()) << got.status().ToString();
    return got.ok() ? std::move(*got) : std::vector<ReceivedMessage>{};
  }

  // Receives until `n` messages have come (short long polls; moto may return fewer than asked).
  std::vector<ReceivedMessage> ReceiveN(Queue& queue, std::size_t n,
                                        std::optional<std::chrono::seconds> visibility = std::nullopt) {
    std::vector<ReceivedMessage> all;
    for (int i = 0; i < 10 && all.size() < n; ++i) {
      for (ReceivedMessage& m : Receive(queue, Options(10, 1s, visibility))) all.push_back(std::move(m));
    }
    return all;
  }

  QueueAttributes Counts(Queue& queue) {
    StatusOr<QueueAttributes> a = queue.GetAttributes();
    EXPECT_TRUE(a.ok()) << a.status().ToString();
    return a.ok() ? *a : QueueAttributes{};
  }

  std::string endpoint_;
  TestCredentials credentials_;
  std::unique_ptr<HttpClient> http_;
  std::unique_ptr<CountingHttpClient> counting_;
};

TEST_P(SqsQueueTest, SendReceiveRoundTripWithAttributes) {
  auto queue = Open(CreateQueue());
  ASSERT_NE(queue, nullptr);
  OutgoingMessage m = Message("héllo \"world\" <&> \r\n\t+/=%");
  m.attributes["text"] = StringAttribute("String", "a b+c/d&e=f é");
  m.attributes["count"] = StringAttribute("Number", "42");
  m.attributes["blob.bin"] = BinaryAttribute("Binary", std::string("\x00\x01\xfe\xff", 4));
  m.attributes["typed"] = StringAttribute("String.custom", "v");
  StatusOr<SendResult> sent = queue->Send(m);
  ASSERT_TRUE(sent.ok()) << sent.status().ToString();
  EXPECT_FALSE(sent->message_id.empty());
  EXPECT_EQ(sent->md5_of_body, Md5OfBody(m.body));

  const auto before = std::chrono::system_clock::now();
  std::vector<ReceivedMessage> got = Receive(*queue, Options(10, 1s));
  ASSERT_THAT(got, SizeIs(1));
  const ReceivedMessage& r = got[0];
  EXPECT_EQ(r.message_id, sent->message_id);
  EXPECT_EQ(r.body, m.body);
  EXPECT_EQ(r.attributes, m.attributes);
  EXPECT_EQ(r.md5_of_body, sent->md5_of_body);
  EXPECT_EQ(r.receive_count, 1);
  EXPECT_FALSE(r.receipt_handle.empty());
  EXPECT_LE(r.sent_timestamp, r.first_receive_timestamp);
  EXPECT_GT(r.sent_timestamp, before - 60s);
  EXPECT_LT(r.first_receive_timestamp, before + 60s);

  ASSERT_TRUE(queue->Delete(r.receipt_handle).ok());
  QueueAttributes counts = Counts(*queue);
  EXPECT_EQ(counts.visible + counts.in_flight + counts.delayed, 0);
}

TEST_P(SqsQueueTest, SendBatchOfTen) {
  auto queue = Open(CreateQueue());
  ASSERT_NE(queue, nullptr);
  std::vector<SendBatchEntry> entries;
  std::set<std::string> bodies;
  for (int i = 0; i < 10; ++i) {
    SendBatchEntry e;
    e.id = "e" + std::to_string(i);
    e.message.body = "body-" + std::to_string(i);
    if (i % 3 == 0) e.message.attributes["i"] = StringAttribute("Number", std::to_string(i));
    bodies.insert(e.message.body);
    entries.push_back(std::move(e));
  }
  StatusOr<BatchResult<SendResult>> result = queue->SendBatch(entries);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_THAT(result->failed, IsEmpty());
  ASSERT_THAT(result->successful, SizeIs(10));
  std::set<std::string> ids, message_ids;
  for (const auto& s : result->successful) {
    ids.insert(s.id);
    message_ids.insert(s.value.message_id);
  }
  EXPECT_EQ(ids.size(), 10u);
  EXPECT_EQ(message_ids.size(), 10u);

  std::vector<ReceivedMessage> got = ReceiveN(*queue, 10);
  ASSERT_THAT(got, SizeIs(10));
  std::set<std::string> received;
  for (const ReceivedMessage& m : got) {
    received.insert(m.body);
    if (m.body == "body-3") {
      EXPECT_EQ(m.attributes.at("i").string_value, "3");
    }
  }
  EXPECT_EQ(received, bodies);
}

TEST_P(SqsQueueTest, BatchWithOneBadEntryReportsItAlone) {
  auto queue = Open(CreateQueue());
  ASSERT_NE(queue, nullptr);
  std::vector<SendBatchEntry> entries(3);
  entries[0].id = "good1";
  entries[0].message.body = "one";
  entries[1].id = "bad";
  entries[1].message.body = "two";
  entries[1].message.delay = 16min;  // over SQS's 15 min
  entries[2].id = "good2";
  entries[2].message.body = "three";
  StatusOr<BatchResult<SendResult>> result = queue->SendBatch(entries);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_THAT(result->successful, SizeIs(2));
  ASSERT_THAT(result->failed, SizeIs(1));
  EXPECT_EQ(result->failed[0].id, "bad");
  EXPECT_TRUE(result->failed[0].sender_fault);
  EXPECT_EQ(result->failed[0].status.error_name(), "InvalidParameterValue");
  std::vector<ReceivedMessage> got = ReceiveN(*queue, 2);
  ASSERT_THAT(got, SizeIs(2));
  EXPECT_THAT((std::vector<std::string>{got[0].body, got[1].body}), UnorderedElementsAre("one", "three"));

  // Request-level faults fail the call, as with the in-memory backend.
  std::vector<SendBatchEntry> dup(2);
  dup[0].id = dup[1].id = "same";
  dup[0].message.body = dup[1].message.body = "x";
  EXPECT_EQ(queue->SendBatch(dup).status().error_name(), "BatchEntryIdsNotDistinct");
  EXPECT_EQ(queue->SendBatch({}).status().error_name(), "EmptyBatchRequest");
}

TEST_P(SqsQueueTest, LongPollReturnsWhenAMessageArrives) {
  const std::string url = CreateQueue();
  auto receiver = Open(url);
  auto sender = Open(url);
  ASSERT_NE(receiver, nullptr);
  ASSERT_NE(sender, nullptr);
  const auto start = std::chrono::steady_clock::now();
  std::future<StatusOr<SendResult>> send = std::async(std::launch::async, [&] {
    // The only real wait in this test: the message must arrive while the poll waits.
    std::this_thread::sleep_for(300ms);
    return sender->Send(Message("late"));
  });
  std::vector<ReceivedMessage> got = Receive(*receiver, Options(1, 10s));
  const auto elapsed = Since(start);
  ASSERT_TRUE(send.get().ok());
  ASSERT_THAT(got, SizeIs(1));
  EXPECT_EQ(got[0].body, "late");
  EXPECT_GE(elapsed, 250ms);
  EXPECT_LT(elapsed, 3s);  // well under the 10 s wait
}

TEST_P(SqsQueueTest, VisibilityExpiryAndRedelivery) {
  auto queue = Open(CreateQueue());
  ASSERT_NE(queue, nullptr);
  ASSERT_TRUE(queue->Send(Message("again")).ok());
  std::vector<ReceivedMessage> first = Receive(*queue, Options(1, 0s, 1s));
  ASSERT_THAT(first, SizeIs(1));
  EXPECT_EQ(first[0].receive_count, 1);
  EXPECT_THAT(Receive(*queue, Options(1, 0s)), IsEmpty());
  const auto start = std::chrono::steady_clock::now();
  std::vector<ReceivedMessage> second = Receive(*queue, Options(1, 3s));  // returns once visible again
  ASSERT_THAT(second, SizeIs(1));
  EXPECT_LT(Since(start), 2900ms);
  EXPECT_EQ(second[0].message_id, first[0].message_id);
  EXPECT_EQ(second[0].receive_count, 2);
  EXPECT_NE(second[0].receipt_handle, first[0].receipt_handle);
  EXPECT_EQ(second[0].sent_timestamp, first[0].sent_timestamp);
}

TEST_P(SqsQueueTest, ChangeVisibilityAndBatch) {
  auto queue = Open(CreateQueue());
  ASSERT_NE(queue, nullptr);
  ASSERT_TRUE(queue->Send(Message("a")).ok());
  ASSERT_TRUE(queue->Send(Message("b")).ok());
  std::vector<ReceivedMessage> got = ReceiveN(*queue, 2, 60s);
  ASSERT_THAT(got, SizeIs(2));
  EXPECT_THAT(Receive(*queue, Options(10)), IsEmpty());

  StatusOr<BatchResult<Empty>> changed = queue->ChangeVisibilityBatch(
      {{"x", got[0].receipt_handle, 0s}, {"y", got[1].receipt_handle, 0s}, {"z", got[1].receipt_handle, 13h}});
  ASSERT_TRUE(changed.ok()) << changed.status().ToString();
  EXPECT_THAT(changed->successful, SizeIs(2));
  ASSERT_THAT(changed->failed, SizeIs(1));  // 13 h is over the limit: checked locally
  EXPECT_EQ(changed->failed[0].id, "z");
  EXPECT_EQ(changed->failed[0].status.error_name(), "InvalidParameterValue");

  std::vector<ReceivedMessage> again = ReceiveN(*queue, 2, 60s);
  ASSERT_THAT(again, SizeIs(2));
  for (const ReceivedMessage& m : again) EXPECT_EQ(m.receive_count, 2);

  // The single form, back to visible.
  ASSERT_TRUE(queue->ChangeVisibility(again[0].receipt_handle, 0s).ok());
  std::vector<ReceivedMessage> third = Receive(*queue, Options(10, 1s));
  ASSERT_THAT(third, SizeIs(1));
  EXPECT_EQ(third[0].message_id, again[0].message_id);
  EXPECT_EQ(third[0].receive_count, 3);
}

TEST_P(SqsQueueTest, DeleteBatchWithOneInvalidHandle) {
  auto queue = Open(CreateQueue());
  ASSERT_NE(queue, nullptr);
  ASSERT_TRUE(queue->Send(Message("a")).ok());
  ASSERT_TRUE(queue->Send(Message("b")).ok());
  std::vector<ReceivedMessage> got = ReceiveN(*queue, 2);
  ASSERT_THAT(got, SizeIs(2));
  StatusOr<BatchResult<Empty>> deleted = queue->DeleteBatch(
      {{"first", got[0].receipt_handle}, {"bogus", "not-a-receipt-handle"}, {"second", got[1].receipt_handle}});
  ASSERT_TRUE(deleted.ok()) << deleted.status().ToString();
  EXPECT_THAT(deleted->successful, SizeIs(2));
  ASSERT_THAT(deleted->failed, SizeIs(1));
  EXPECT_EQ(deleted->failed[0].id, "bogus");
  EXPECT_TRUE(deleted->failed[0].sender_fault);
  EXPECT_EQ(deleted->failed[0].status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(deleted->failed[0].status.error_name(), "ReceiptHandleIsInvalid");
  QueueAttributes counts = Counts(*queue);
  EXPECT_EQ(counts.visible + counts.in_flight, 0);

  Status single = queue->Delete("not-a-receipt-handle");
  EXPECT_EQ(single.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(single.error_name(), "ReceiptHandleIsInvalid");
}

TEST_P(SqsQueueTest, DelayedMessage) {
  auto queue = Open(CreateQueue());
  ASSERT_NE(queue, nullptr);
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(queue->Send(Message("later", 1s)).ok());
  EXPECT_THAT(Receive(*queue, Options(1)), IsEmpty());
  EXPECT_EQ(Counts(*queue).delayed, 1);
  std::vector<ReceivedMessage> got = Receive(*queue, Options(1, 3s));
  ASSERT_THAT(got, SizeIs(1));
  EXPECT_EQ(got[0].body, "later");
  EXPECT_GE(Since(start), 900ms);
}

TEST_P(SqsQueueTest, DeadLetterQueueAfterMaxReceives) {
  const std::string dlq_url = CreateQueue("-dlq");
  nlohmann::json redrive = {{"deadLetterTargetArn", QueueArn(dlq_url)}, {"maxReceiveCount", "2"}};
  const std::string url = CreateQueue("", {{"RedrivePolicy", redrive.dump()}});
  auto queue = Open(url);
  auto dlq = Open(dlq_url);
  ASSERT_NE(queue, nullptr);
  ASSERT_NE(dlq, nullptr);
  // GetQueueAttributes reads the policy back: the consumer learns which delivery is the last.
  StatusOr<QueueAttributes> attributes = queue->GetAttributes();
  ASSERT_TRUE(attributes.ok()) << attributes.status().ToString();
  EXPECT_EQ(attributes->max_receive_count, 2);
  EXPECT_EQ(dlq->GetAttributes()->max_receive_count, 0);
  ASSERT_TRUE(queue->Send(Message("poison")).ok());
  for (int i = 1; i <= 2; ++i) {
    std::vector<ReceivedMessage> got = Receive(*queue, Options(1, 0s, 0s));  // visible again at once
    ASSERT_THAT(got, SizeIs(1)) << "receive " << i;
    EXPECT_EQ(got[0].receive_count, i);
  }
  EXPECT_THAT(Receive(*queue, Options(1, 0s, 0s)), IsEmpty());  // moved to the dead-letter queue
  std::vector<ReceivedMessage> dead = Receive(*dlq, Options(1, 1s));
  ASSERT_THAT(dead, SizeIs(1));
  EXPECT_EQ(dead[0].body, "poison");
}

TEST_P(SqsQueueTest, FifoDeduplicatesSends) {
  const std::string url = CreateQueue(".fifo", {{"FifoQueue", "true"}});
  ASSERT_TRUE(url.ends_with(".fifo")) << url;
  auto queue = Open(url);
  ASSERT_NE(queue, nullptr);
  OutgoingMessage m = Message("once");
  m.group_id = "job-a";
  m.deduplication_id = "job-a/2026-03-08T07:00:00Z";
  StatusOr<SendResult> first = queue->Send(m);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_FALSE(first->sequence_number.empty());
  StatusOr<SendResult> second = queue->Send(m);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  std::vector<ReceivedMessage> got = Receive(*queue, Options(10, 1s));
  ASSERT_THAT(got, SizeIs(1));
  EXPECT_EQ(got[0].body, "once");
  EXPECT_EQ(got[0].group_id, "job-a");
  EXPECT_EQ(got[0].deduplication_id, "job-a/2026-03-08T07:00:00Z");
  EXPECT_EQ(got[0].sequence_number, first->sequence_number);
  ASSERT_TRUE(queue->Delete(got[0].receipt_handle).ok());
  EXPECT_THAT(Receive(*queue, Options(10)), IsEmpty());

  // A FIFO message needs a group id: checked before any request.
  const int before = counting_->count();
  StatusOr<SendResult> no_group = queue->Send(Message("x"));
  EXPECT_EQ(no_group.status().error_name(), "MissingParameter");
  EXPECT_EQ(counting_->count(), before);
}

TEST_P(SqsQueueTest, QueueByName) {
  const std::string url = CreateQueue();
  SqsQueueOptions options = BaseOptions();
  options.queue_name = url.substr(url.rfind('/') + 1);
  StatusOr<std::unique_ptr<Queue>> queue = NewSqsQueue(options, *counting_, credentials_, RealClock());
  ASSERT_TRUE(queue.ok()) << queue.status().ToString();
  ASSERT_TRUE((*queue)->Send(Message("by name")).ok());
  auto by_url = Open(url);
  std::vector<ReceivedMessage> got = Receive(*by_url, Options(1, 1s));
  ASSERT_THAT(got, SizeIs(1));
  EXPECT_EQ(got[0].body, "by name");
}

TEST_P(SqsQueueTest, NonexistentQueueIsNotFoundAndNotRetried) {
  SqsQueueOptions options = BaseOptions();
  options.queue_name = "taskpipe-no-such-queue-" + std::to_string(getpid());
  StatusOr<std::unique_ptr<Queue>> by_name = NewSqsQueue(options, *counting_, credentials_, RealClock());
  ASSERT_FALSE(by_name.ok());
  EXPECT_EQ(by_name.status().code(), StatusCode::kNotFound) << by_name.status().ToString();
  EXPECT_EQ(by_name.status().error_name(), "QueueDoesNotExist");
  EXPECT_THAT(by_name.status().message(), HasSubstr("does not exist"));
  EXPECT_EQ(counting_->count(), 1);

  // By URL: the queue is not looked up at creation; the first call fails.
  auto queue = Open(endpoint_ + "/123456789012/" + options.queue_name);
  ASSERT_NE(queue, nullptr);
  StatusOr<SendResult> sent = queue->Send(Message("x"));
  EXPECT_EQ(sent.status().code(), StatusCode::kNotFound) << sent.status().ToString();
  EXPECT_THAT(sent.status().message(), HasSubstr("does not exist"));
  EXPECT_EQ(counting_->count(), 2);
}

TEST_P(SqsQueueTest, GetAttributesCounts) {
  auto queue = Open(CreateQueue());
  ASSERT_NE(queue, nullptr);
  ASSERT_TRUE(queue->Send(Message("a")).ok());
  ASSERT_TRUE(queue->Send(Message("b")).ok());
  ASSERT_TRUE(queue->Send(Message("c", 60s)).ok());
  ASSERT_THAT(Receive(*queue, Options(1, 0s, 60s)), SizeIs(1));
  QueueAttributes counts = Counts(*queue);
  EXPECT_EQ(counts.visible, 1);
  EXPECT_EQ(counts.in_flight, 1);
  EXPECT_EQ(counts.delayed, 1);
}

TEST_P(SqsQueueTest, Boto3SeesWhatTaskpipeSent) {
  const std::string url = CreateQueue();
  auto queue = Open(url);
  ASSERT_NE(queue, nullptr);
  OutgoingMessage m = Message("{\"job\": \"report\", \"note\": \"héllo & <bye>\"}\r\nline 2");
  m.attributes["trace"] = StringAttribute("String", "abc def");
  m.attributes["n"] = StringAttribute("Number.int", "-12.5e3");
  m.attributes["raw"] = BinaryAttribute("Binary", std::string("\x00\xff\x10 z", 5));
  ASSERT_TRUE(queue->Send(m).ok());

  const char* script = R"(
import base64, boto3, json, sys
c = boto3.client("sqs", endpoint_url=sys.argv[1], region_name="us-east-1",
                 aws_access_key_id="AKIDTEST", aws_secret_access_key="secret")
r = c.receive_message(QueueUrl=sys.argv[2], MaxNumberOfMessages=10, WaitTimeSeconds=1,
                      MessageAttributeNames=["All"])
out = []
for m in r.get("Messages", []):
    attrs = {}
    for k, v in m.get("MessageAttributes", {}).items():
        if "BinaryValue" in v:
            attrs[k] = {"DataType": v["DataType"], "BinaryValue": base64.b64encode(v["BinaryValue"]).decode()}
        else:
            attrs[k] = {"DataType": v["DataType"], "StringValue": v["StringValue"]}
    out.append({"Body": m["Body"], "MessageAttributes": attrs})
print(json.dumps(out))
)";
  testing::ProcessOptions process;
  process.env = {{"NO_PROXY", "127.0.0.1,localhost"}, {"no_proxy", "127.0.0.1,localhost"}};
  process.unset_env = {"AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS", "AWS_CONFIG_FILE",
                       "AWS_SHARED_CREDENTIALS_FILE"};
  testing::ProcessResult result = testing::RunProcess({"/usr/bin/env", "python3", "-c", script, endpoint_, url}, process);
  ASSERT_EQ(result.exit_code, 0) << "python3 with boto3 (part of the machine image) failed:\n" << result.err;
  nlohmann::json seen = nlohmann::json::parse(result.out, nullptr, false);
  ASSERT_TRUE(seen.is_array()) << result.out;
  nlohmann::json expected = nlohmann::json::array({{
      {"Body", m.body},
      {"MessageAttributes",
       {{"trace", {{"DataType", "String"}, {"StringValue", "abc def"}}},
        {"n", {{"DataType", "Number.int"}, {"StringValue", "-12.5e3"}}},
        {"raw", {{"DataType", "Binary"}, {"BinaryValue", "AP8QIHo="}}}}},
  }});
  EXPECT_EQ(seen, expected) << seen.dump(2);
}

INSTANTIATE_TEST_SUITE_P(Protocols, SqsQueueTest, ::testing::Values("json", "query"),
                         [](const ::testing::TestParamInfo<std::string>& param_info) { return param_info.param; });

// ---------------------------------------------------------------------------------------------
// Against the loopback test server: faults SQS itself would not produce on demand.

// Success bodies for both protocols.
struct Canned {
  std::string send_ok;         // SendMessage of body "hi"
  std::string receive_empty;   // ReceiveMessage with no messages
  std::string error_throttle;  // a throttling error
  int throttle_status;
  std::string error_invalid;   // InvalidParameterValue
  std::string content_type;
};

Canned CannedFor(const std::string& protocol) {
  if (protocol == "json") {
    return {R"({"MD5OfMessageBody": "49f68a5c8493ec2c0bf489821c21fc3b", "MessageId": "m-1"})",
            "{}",
            R"({"__type": "com.amazonaws.sqs#RequestThrottled", "message": "Rate exceeded"})",
            400,
            R"({"__type": "com.amazonaws.sqs#InvalidParameterValue", "message": "Value x for parameter y is invalid."})",
            "application/x-amz-json-1.0"};
  }
  return {"<SendMessageResponse><SendMessageResult><MD5OfMessageBody>49f68a5c8493ec2c0bf489821c21fc3b"
          "</MD5OfMessageBody><MessageId>m-1</MessageId></SendMessageResult></SendMessageResponse>",
          "<ReceiveMessageResponse><ReceiveMessageResult/></ReceiveMessageResponse>",
          "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message>"
          "</Error></ErrorResponse>",
          400,
          "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidParameterValue</Code>"
          "<Message>Value x for parameter y is invalid.</Message></Error></ErrorResponse>",
          "text/xml"};
}

HttpTestReply Reply(const Canned& c, int status, std::string body) {
  HttpTestReply reply = HttpTestReply::Text(status, std::move(body));
  reply.headers = {{"Content-Type", c.content_type}};
  return reply;
}

constexpr char kHtml502[] =
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>"
    "\r\n</body>\r\n</html>\r\n";

class SqsQueueFaultTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    canned_ = CannedFor(GetParam());
    http_ = NewLoopbackClient();
  }

  // Answers the n-th request (0-based) with replies[min(n, size-1)].
  void Script(std::vector<HttpTestReply> replies) {
    // By the order the server read the requests (HttpTestRequest::index), not the order the
    // handler is called in: a request read first may reach the handler second.
    auto shared = std::make_shared<std::vector<HttpTestReply>>(std::move(replies));
    const int base = server_.request_count();
    server_.SetHandler([shared, base](const HttpTestRequest& request) {
      const int n = request.index - base;
      return shared->at(std::min<std::size_t>(static_cast<std::size_t>(n), shared->size() - 1));
    });
  }

  std::unique_ptr<Queue> Open(Clock& clock = RealClock(), int max_attempts = 3,
                              std::chrono::milliseconds base = 1ms) {
    SqsQueueOptions options;
    options.queue_url = server_.url() + "/123456789012/q";
    options.region = kRegion;
    options.protocol = GetParam();
    options.receive_proxy = "";
    options.max_attempts = max_attempts;
    options.retry_base = base;
    options.retry_throttling_base = base;
    options.retry_max = 20s;
    StatusOr<std::unique_ptr<Queue>> queue = NewSqsQueue(options, *http_, credentials_, clock);
    EXPECT_TRUE(queue.ok()) << queue.status().ToString();
    return queue.ok() ? std::move(*queue) : nullptr;
  }

  Canned canned_;
  HttpTestServer server_;
  TestCredentials credentials_;
  std::unique_ptr<HttpClient> http_;
};

TEST_P(SqsQueueFaultTest, RequestIsSignedAndShaped) {
  Script({Reply(canned_, 200, canned_.send_ok)});
  FakeClock clock;
  auto queue = Open(clock);
  ASSERT_NE(queue, nullptr);
  StatusOr<SendResult> sent = queue->Send(Message("hi"));
  ASSERT_TRUE(sent.ok()) << sent.status().ToString();
  EXPECT_EQ(sent->message_id, "m-1");
  ASSERT_EQ(server_.request_count(), 1);
  HttpTestRequest r = server_.requests()[0];
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/");
  EXPECT_EQ(r.Header("X-Amz-Date"), "20260101T000000Z");  // FakeClock's wall time
  ASSERT_TRUE(r.Header("Authorization").has_value());
  EXPECT_THAT(*r.Header("Authorization"),
              HasSubstr("AWS4-HMAC-SHA256 Credential=AKIDTAKSPIPETEST/20260101/us-east-1/sqs/aws4_request"));
  EXPECT_EQ(credentials_.calls(), 1);
  if (GetParam() == "json") {
    EXPECT_EQ(r.Header("X-Amz-Target"), "AmazonSQS.SendMessage");
    EXPECT_EQ(r.Header("Content-Type"), "application/x-amz-json-1.0");
    EXPECT_EQ(r.body, R"({"QueueUrl":")" + server_.url() + R"(/123456789012/q","MessageBody":"hi"})");
  } else {
    EXPECT_FALSE(r.Header("X-Amz-Target").has_value());
    EXPECT_EQ(r.Header("Content-Type"), "application/x-www-form-urlencoded; charset=utf-8");
    EXPECT_THAT(r.body, HasSubstr("Action=SendMessage&Version=2012-11-05&QueueUrl="));
  }
}

TEST_P(SqsQueueFaultTest, ServiceUnavailableThenSuccessIsRetried) {
  Script({Reply(canned_, 503, ""), Reply(canned_, 200, canned_.send_ok)});
  auto queue = Open();
  StatusOr<SendResult> sent = queue->Send(Message("hi"));
  ASSERT_TRUE(sent.ok()) << sent.status().ToString();
  EXPECT_EQ(server_.request_count(), 2);
  EXPECT_EQ(credentials_.calls(), 2);  // fetched (and signed) per attempt
}

TEST_P(SqsQueueFaultTest, ThrottlingIsRetried) {
  Script({Reply(canned_, canned_.throttle_status, canned_.error_throttle), Reply(canned_, 200, canned_.send_ok)});
  auto queue = Open();
  StatusOr<SendResult> sent = queue->Send(Message("hi"));
  ASSERT_TRUE(sent.ok()) << sent.status().ToString();
  EXPECT_EQ(server_.request_count(), 2);
}

TEST_P(SqsQueueFaultTest, ThrottlingEveryTimeGivesUpAfterMaxAttempts) {
  Script({Reply(canned_, canned_.throttle_status, canned_.error_throttle)});
  auto queue = Open();
  StatusOr<SendResult> sent = queue->Send(Message("hi"));
  EXPECT_EQ(sent.status().code(), StatusCode::kResourceExhausted) << sent.status().ToString();
  EXPECT_THAT(sent.status().message(), HasSubstr("Rate exceeded"));
  EXPECT_THAT(sent.status().message(), HasSubstr("3 attempts"));
  EXPECT_EQ(server_.request_count(), 3);
}

TEST_P(SqsQueueFaultTest, ClientErrorIsNotRetried) {
  Script({Reply(canned_, 400, canned_.error_invalid), Reply(canned_, 200, canned_.send_ok)});
  auto queue = Open();
  StatusOr<SendResult> sent = queue->Send(Message("hi"));
  EXPECT_EQ(sent.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(sent.status().error_name(), "InvalidParameterValue");
  EXPECT_THAT(sent.status().message(), HasSubstr("Value x for parameter y is invalid."));
  EXPECT_EQ(server_.request_count(), 1);
}

TEST_P(SqsQueueFaultTest, ConnectionResetIsRetried) {
  Script({HttpTestReply::Reset(), Reply(canned_, 200, canned_.send_ok)});
  auto queue = Open();
  StatusOr<SendResult> sent = queue->Send(Message("hi"));
  ASSERT_TRUE(sent.ok()) << sent.status().ToString();
  EXPECT_EQ(server_.request_count(), 2);
}

TEST_P(SqsQueueFaultTest, HtmlErrorPageFromAProxyIsAClearError) {
  HttpTestReply html = HttpTestReply::Text(502, kHtml502);
  html.headers = {{"Content-Type", "text/html"}};
  Script({html});
  auto queue = Open();
  StatusOr<SendResult> sent = queue->Send(Message("hi"));
  EXPECT_EQ(sent.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(sent.status().message(), HasSubstr("HTML page (\"502 Bad Gateway\")"));
  EXPECT_EQ(server_.request_count(), 3);  // a 502 is transient: retried, then given up
}

TEST_P(SqsQueueFaultTest, TruncatedBodyIsRetriedAsATransportError) {
  Script({HttpTestReply::Truncated(canned_.send_ok, 10), Reply(canned_, 200, canned_.send_ok)});
  auto queue = Open();
  StatusOr<SendResult> sent = queue->Send(Message("hi"));
  ASSERT_TRUE(sent.ok()) << sent.status().ToString();
  EXPECT_EQ(server_.request_count(), 2);
}

TEST_P(SqsQueueFaultTest, CutBodyWithMatchingLengthIsDataLossNotRetried) {
  // The server itself sent half a document: the send may have happened, so it is not repeated.
  Script({Reply(canned_, 200, canned_.send_ok.substr(0, canned_.send_ok.size() / 2)),
          Reply(canned_, 200, canned_.send_ok)});
  auto queue = Open();
  StatusOr<SendResult> sent = queue->Send(Message("hi"));
  EXPECT_EQ(sent.status().code(), StatusCode::kDataLoss) << sent.status().ToString();
  EXPECT_EQ(server_.request_count(), 1);
}

TEST_P(SqsQueueFaultTest, RetryWaitsGoThroughTheClock) {
  Script({Reply(canned_, 503, "")});
  FakeClock clock;
  auto queue = Open(clock, /*max_attempts=*/3, /*base=*/1s);
  std::future<StatusOr<SendResult>> sent = std::async(std::launch::async, [&] { return queue->Send(Message("hi")); });
  clock.BlockUntilWaiters(1);
  EXPECT_EQ(server_.request_count(), 1);
  clock.Advance(1s);  // the first wait is under base * 2^0 = 1 s
  // The woken waiter unregisters before it sends again, so once the second request is in, the
  // waiter BlockUntilWaiters() sees is the second wait.
  ASSERT_TRUE(server_.WaitForRequests(2));
  clock.BlockUntilWaiters(1);
  EXPECT_EQ(server_.request_count(), 2);
  clock.Advance(2s);  // the second under 2 s
  StatusOr<SendResult> result = sent.get();
  EXPECT_EQ(result.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(server_.request_count(), 3);
}

TEST_P(SqsQueueFaultTest, ShutdownAbortsAnInFlightLongPoll) {
  HttpTestReply hang = HttpTestReply::Hang();
  hang.hang_for = 10s;
  Script({hang, Reply(canned_, 200, canned_.send_ok)});
  auto queue = Open();
  std::future<StatusOr<std::vector<ReceivedMessage>>> received =
      std::async(std::launch::async, [&] { return queue->Receive(Options(10, 20s)); });
  ASSERT_TRUE(server_.WaitForRequests(1));
  const auto start = std::chrono::steady_clock::now();
  queue->Shutdown();
  StatusOr<std::vector<ReceivedMessage>> got = received.get();
  EXPECT_LT(Since(start), 2s);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_THAT(*got, IsEmpty());

  // Later receives return at once without a request; other calls still work.
  StatusOr<std::vector<ReceivedMessage>> later = queue->Receive(Options(10, 20s));
  ASSERT_TRUE(later.ok());
  EXPECT_THAT(*later, IsEmpty());
  EXPECT_EQ(server_.request_count(), 1);
  EXPECT_TRUE(queue->Send(Message("hi")).ok());
  EXPECT_EQ(server_.request_count(), 2);
}

TEST_P(SqsQueueFaultTest, ShutdownEndsAReceiveWaitingToRetry) {
  Script({Reply(canned_, 503, "")});
  FakeClock clock;
  auto queue = Open(clock, /*max_attempts=*/3, /*base=*/1s);
  std::future<StatusOr<std::vector<ReceivedMessage>>> received =
      std::async(std::launch::async, [&] { return queue->Receive(Options(10, 1s)); });
  clock.BlockUntilWaiters(1);
  queue->Shutdown();
  StatusOr<std::vector<ReceivedMessage>> got = received.get();
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_THAT(*got, IsEmpty());
  EXPECT_EQ(server_.request_count(), 1);
}

TEST_P(SqsQueueFaultTest, LongPollTimeoutCoversTheWait) {
  // The server answers an empty receive after 200 ms: request_timeout alone (100 ms) would cut the
  // exchange off, wait + margin (1.5 s) does not.
  HttpTestReply slow = Reply(canned_, 200, canned_.receive_empty);
  slow.delay = 200ms;
  Script({slow});
  SqsQueueOptions options;
  options.queue_url = server_.url() + "/123456789012/q";
  options.region = kRegion;
  options.protocol = GetParam();
  options.receive_proxy = "";
  options.max_attempts = 1;
  options.request_timeout = 100ms;
  options.long_poll_margin = 500ms;
  StatusOr<std::unique_ptr<Queue>> queue = NewSqsQueue(options, *http_, credentials_, RealClock());
  ASSERT_TRUE(queue.ok());
  StatusOr<std::vector<ReceivedMessage>> got = (*queue)->Receive(Options(10, 1s));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_THAT(*got, IsEmpty());
  // Sends keep the short timeout.
  StatusOr<SendResult> sent = (*queue)->Send(Message("hi"));
  EXPECT_EQ(sent.status().code(), StatusCode::kDeadlineExceeded) << sent.status().ToString();
}

TEST_P(SqsQueueFaultTest, InvalidInputFailsWithoutARequest) {
  auto queue = Open();
  EXPECT_EQ(queue->Send(Message("")).status().error_name(), "InvalidParameterValue");
  EXPECT_EQ(queue->Send(Message("x", 16min)).status().error_name(), "InvalidParameterValue");
  EXPECT_EQ(queue->Receive(Options(11)).status().error_name(), "InvalidParameterValue");
  EXPECT_EQ(queue->Receive(Options(1, 21s)).status().error_name(), "InvalidParameterValue");
  EXPECT_EQ(queue->ChangeVisibility("h", 13h).error_name(), "InvalidParameterValue");
  EXPECT_EQ(queue->Delete("").error_name(), "ReceiptHandleIsInvalid");
  std::vector<SendBatchEntry> eleven(11);
  for (int i = 0; i < 11; ++i) {
    eleven[static_cast<std::size_t>(i)].id = "e" + std::to_string(i);
    eleven[static_cast<std::size_t>(i)].message.body = "x";
  }
  EXPECT_EQ(queue->SendBatch(eleven).status().error_name(), "TooManyEntriesInBatchRequest");
  std::vector<SendBatchEntry> big(2);
  big[0].id = "a";
  big[1].id = "b";
  big[0].message.body = std::string(600 * 1024, 'x');
  big[1].message.body = std::string(600 * 1024, 'y');
  EXPECT_EQ(queue->SendBatch(big).status().error_name(), "BatchRequestTooLong");
  EXPECT_EQ(queue->DeleteBatch({{"bad id!", "h"}}).status().error_name(), "InvalidBatchEntryId");
  StatusOr<BatchResult<Empty>> local_only = queue->ChangeVisibilityBatch({{"a", "h", 13h}});
  ASSERT_TRUE(local_only.ok());
  ASSERT_THAT(local_only->failed, SizeIs(1));
  EXPECT_EQ(server_.request_count(), 0);
}

TEST_P(SqsQueueFaultTest, BadOptions) {
  SqsQueueOptions options;
  options.protocol = GetParam();
  options.region = kRegion;
  EXPECT_EQ(NewSqsQueue(options, *http_, credentials_, RealClock()).status().code(), StatusCode::kInvalidArgument);
  options.queue_url = server_.url() + "/1/q";
  options.queue_name = "q";
  EXPECT_EQ(NewSqsQueue(options, *http_, credentials_, RealClock()).status().code(), StatusCode::kInvalidArgument);
  options.queue_name = "";
  options.protocol = "soap";
  EXPECT_EQ(NewSqsQueue(options, *http_, credentials_, RealClock()).status().code(), StatusCode::kInvalidArgument);
  options.protocol = GetParam();
  options.region = "";  // not an AWS host: the region cannot be guessed
  EXPECT_EQ(NewSqsQueue(options, *http_, credentials_, RealClock()).status().code(), StatusCode::kInvalidArgument);
  options.queue_url = "https://sqs.eu-west-1.amazonaws.com/123456789012/q";  // region from the host
  EXPECT_TRUE(NewSqsQueue(options, *http_, credentials_, RealClock()).ok());
  options.endpoint = "http://127.0.0.1:1/path";
  EXPECT_EQ(NewSqsQueue(options, *http_, credentials_, RealClock()).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(server_.request_count(), 0);
}

INSTANTIATE_TEST_SUITE_P(Protocols, SqsQueueFaultTest, ::testing::Values("json", "query"),
                         [](const ::testing::TestParamInfo<std::string>& param_info) { return param_info.param; });

TEST(SqsRetryDelayTest, StandardModeBackoff) {
  SqsQueueOptions options;  // 50 ms, 1 s for throttling, capped at 20 s
  EXPECT_EQ(SqsRetryDelay(options, 1, false, 0.0), Clock::duration::zero());
  EXPECT_EQ(SqsRetryDelay(options, 1, false, 0.5), 25ms);
  EXPECT_EQ(SqsRetryDelay(options, 3, false, 0.5), 100ms);
  EXPECT_EQ(SqsRetryDelay(options, 1, true, 0.5), 500ms);
  EXPECT_EQ(SqsRetryDelay(options, 2, true, 0.5), 1s);
  EXPECT_EQ(SqsRetryDelay(options, 6, true, 0.5), 10s);   // min(32 s, 20 s) * 0.5
  EXPECT_EQ(SqsRetryDelay(options, 100, true, 0.5), 10s);  // no overflow
  EXPECT_LT(SqsRetryDelay(options, 100, true, 0.999999), 20s);
}

}  // namespace
}  // namespace taskpipe
