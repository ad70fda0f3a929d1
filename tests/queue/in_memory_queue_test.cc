#include "queue/in_memory_queue.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "queue/validate.h"
#include "tests/fakes/fake_clock.h"

namespace taskpipe {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::SizeIs;

std::unique_ptr<Queue> MakeQueue(FakeClock& clock, const InMemoryQueueOptions& options = {}) {
  StatusOr<std::unique_ptr<Queue>> queue = NewInMemoryQueue(options, clock);
  EXPECT_TRUE(queue.ok()) << queue.status().ToString();
  return queue.ok() ? std::move(*queue) : nullptr;
}

OutgoingMessage Message(std::string body, std::chrono::seconds delay = 0s) {
  OutgoingMessage message;
  message.body = std::move(body);
  message.delay = delay;
  return message;
}

// (Designated initializers would trip -Wmissing-field-initializers on ReceiveOptions.)
ReceiveOptions Options(int max_messages, std::chrono::seconds wait = 0s,
                       std::optional<std::chrono::seconds> visibility = std::nullopt) {
  ReceiveOptions options;
  options.max_messages = max_messages;
  options.wait = wait;
  options.visibility_timeout = visibility;
  return options;
}

std::vector<ReceivedMessage> ReceiveNow(Queue& queue, int max = 10,
                                        std::optional<std::chrono::seconds> visibility = std::nullopt) {
  StatusOr<std::vector<ReceivedMessage>> received = queue.Receive(Options(max, 0s, visibility));
  EXPECT_TRUE(received.ok()) << received.status().ToString();
  return received.ok() ? std::move(*received) : std::vector<ReceivedMessage>{};
}

ReceivedMessage ReceiveOne(Queue& queue, std::optional<std::chrono::seconds> visibility = std::nullopt) {
  std::vector<ReceivedMessage> received = ReceiveNow(queue, 1, visibility);
  EXPECT_THAT(received, SizeIs(1));
  return received.empty() ? ReceivedMessage{} : received[0];
}


MessageAttribute StringAttribute(std::string data_type, std::string value) {
  MessageAttribute attribute;
  attribute.data_type = std::move(data_type);
  attribute.string_value = std::move(value);
  return attribute;
}

MessageAttribute BinaryAttribute(std::string data_type, std::string value) {
  MessageAttribute attribute;
  attribute.data_type = std::move(data_type);
  attribute.binary_value = std::move(value);
  return attribute;
}

QueueAttributes Attributes(Queue& queue) {
  StatusOr<QueueAttributes> attributes = queue.GetAttributes();
  EXPECT_TRUE(attributes.ok()) << attributes.status().ToString();
  return attributes.ok() ? *attributes : QueueAttributes{};
}

// visible, in flight, delayed
std::vector<std::int64_t> Counts(Queue& queue) {
  QueueAttributes a = Attributes(queue);
  return {a.visible, a.in_flight, a.delayed};
}

void ExpectError(const Status& status, const std::string& error_name) {
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
  EXPECT_EQ(status.error_name(), error_name) << status.ToString();
  EXPECT_FALSE(status.message().empty());
}

TEST(InMemoryQueueTest, SendReceiveDelete) {
  FakeClock clock;
  auto queue = MakeQueue(clock);
  StatusOr<SendResult> sent = queue->Send(Message("hello"));
  ASSERT_TRUE(sent.ok()) << sent.status().ToString();
  EXPECT_TRUE(std::regex_match(sent->message_id,
                               std::regex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")))
      << sent->message_id;
  EXPECT_EQ(sent->md5_of_body, "5d41402abc4b2a76b9719d911017c592");  // md5("hello")
  EXPECT_THAT(Counts(*queue), ElementsAre(1, 0, 0));

  ReceivedMessage m = ReceiveOne(*queue);
  EXPECT_EQ(m.message_id, sent->message_id);
  EXPECT_EQ(m.body, "hello");
  EXPECT_EQ(m.md5_of_body, sent->md5_of_body);
  EXPECT_EQ(m.receive_count, 1);
  EXPECT_FALSE(m.receipt_handle.empty());
  EXPECT_THAT(Counts(*queue), ElementsAre(0, 1, 0));
  EXPECT_TRUE(queue->Delete(m.receipt_handle).ok());
  EXPECT_THAT(ReceiveNow(*queue), IsEmpty());
  EXPECT_THAT(Counts(*queue), ElementsAre(0, 0, 0));
}

TEST(InMemoryQueueTest, MessageReappearsAfterVisibilityTimeout) {
  FakeClock clock;
  auto queue = MakeQueue(clock, {.visibility_timeout = 30s});
  ASSERT_TRUE(queue->Send(Message("hello")).ok());
  ReceivedMessage first = ReceiveOne(*queue);
  clock.Advance(29s);
  EXPECT_THAT(ReceiveNow(*queue), IsEmpty());
  clock.Advance(2s);
  std::vector<ReceivedMessage> again = ReceiveNow(*queue);
  ASSERT_THAT(again, SizeIs(1));
  EXPECT_EQ(again[0].receive_count, 2);
  EXPECT_EQ(again[0].message_id, first.message_id);
  EXPECT_EQ(again[0].sent_timestamp, first.sent_timestamp);
  EXPECT_EQ(again[0].first_receive_timestamp, first.first_receive_timestamp);
}

TEST(InMemoryQueueTest, MessageReappearsExactlyAtTheTimeout) {
  FakeClock clock;
  auto queue = MakeQueue(clock, {.visibility_timeout = 30s});
  ASSERT_TRUE(queue->Send(Message("hello")).ok());
  ReceiveOne(*queue);
  clock.Advance(30s - 1ns);
  EXPECT_THAT(ReceiveNow(*queue), IsEmpty());
  clock.Advance(1ns);
  EXPECT_THAT(ReceiveNow(*queue), SizeIs(1));
}

TEST(InMemoryQueueTest, ReceiveOverridesVisibilityTimeout) {
  FakeClock clock;
  auto queue = MakeQueue(clock, {.visibility_timeout = 30s});
  ASSERT_TRUE(queue->Send(Message("a")).ok());
  ReceiveOne(*queue, 5s);
  clock.Advance(4s);
  EXPECT_THAT(ReceiveNow(*queue), IsEmpty());
  clock.Advance(1s);
  ReceivedMessage m = ReceiveOne(*queue, 100s);
  EXPECT_EQ(m.receive_count, 2);
  clock.Advance(99s);
  EXPECT_THAT(ReceiveNow(*queue), IsEmpty());
  clock.Advance(1s);
  EXPECT_THAT(ReceiveNow(*queue), SizeIs(1));
}

TEST(InMemoryQueueTest, ZeroVisibilityOverrideLeavesMessageVisible) {
  FakeClock clock;
  auto queue = MakeQueue(clock);
  ASSERT_TRUE(queue->Send(Message("a")).ok());
  ReceivedMessage first = ReceiveOne(*queue, 0s);
  ReceivedMessage second = ReceiveOne(*queue, 0s);
  EXPECT_EQ(second.message_id, first.message_id);
  EXPECT_EQ(second.receive_count, 2);
}

TEST(InMemoryQueueTest, ChangeVisibilityToZeroMakesMessageVisibleAtOnce) {
  FakeClock clock;
  auto queue = MakeQueue(clock);
  ASSERT_TRUE(queue->Send(Message("a")).ok());
  ReceivedMessage m = ReceiveOne(*queue);
  ASSERT_TRUE(queue->ChangeVisibility(m.receipt_handle, 0s).ok());
  EXPECT_THAT(Counts(*queue), ElementsAre(1, 0, 0));
  ReceivedMessage again = ReceiveOne(*queue);
  EXPECT_EQ(again.message_id, m.message_id);
  EXPECT_EQ(again.receive_count, 2);
}

TEST(InMemoryQueueTest, ChangeVisibilityExtendsAndShortensFromNow) {
  FakeClock clock;
  auto queue = MakeQueue(clock, {.visibility_timeout = 30s});
  ASSERT_TRUE(queue->Send(Message("a")).ok());
  ReceivedMessage m = ReceiveOne(*queue);
  clock.Advance(20s);
  ASSERT_TRUE(queue->ChangeVisibility(m.receipt_handle, 60s).ok());  // visible at 80 s
  clock.Advance(59s);
  EXPECT_THAT(ReceiveNow(*queue), IsEmpty());  // 79 s: past the original 30 s
  ASSERT_TRUE(queue->ChangeVisibility(m.receipt_handle, 5s).ok());  // now visible at 84 s
  clock.Advance(4s);
  EXPECT_THAT(ReceiveNow(*queue), IsEmpty());
  clock.Advance(1s);
  EXPECT_THAT(ReceiveNow(*queue), SizeIs(1));
}

TEST(InMemoryQueueTest, ChangeVisibilityCannotPassTwelveHoursAfterReceive) {
  FakeClock clock;
  auto queue = MakeQueue(clock);
  ASSERT_TRUE(queue->Send(Message("a")).ok());
  ReceivedMessage m = ReceiveOne(*queue, 2h);
  clock.Advance(1h);
  ExpectError(queue->ChangeVisibility(m.receipt_handle, 11h + 1s), "InvalidParameterValue");
  EXPECT_TRUE(queue->ChangeVisibility(m.receipt_handle, 11h).ok());
  ExpectError(queue->ChangeVisibility(m.receipt_handle, 12h + 1s), "InvalidParameterValue");
}

TEST(InMemoryQueueTest, EachReceiveGivesAFreshHandleAndStaleOnesAreRejected) {
  FakeClock clock;
  auto queue = MakeQueue(clock, {.visibility_timeout = 30s});
  ASSERT_TRUE(queue->Send(Message("a")).ok());
  ReceivedMessage first = ReceiveOne(*queue);
  clock.Advance(30s);
  ReceivedMessage second = ReceiveOne(*queue);
  EXPECT_NE(first.receipt_handle, second.receipt_handle);
  ExpectError(queue->Delete(first.receipt_handle), "ReceiptHandleIsInvalid");
  ExpectError(queue->ChangeVisibility(first.receipt_handle, 10s), "ReceiptHandleIsInvalid");
  // The newest handle still works, and the failed calls changed nothing.
  EXPECT_THAT(Counts(*queue), ElementsAre(0, 1, 0));
  EXPECT_TRUE(queue->ChangeVisibility(second.receipt_handle, 10s).ok());
  EXPECT_TRUE(queue->Delete(second.receipt_handle).ok());
  EXPECT_THAT(Counts(*queue), ElementsAre(0, 0, 0));
}

TEST(InMemoryQueueTest, NewestHandleDeletesAfterVisibilityRanOut) {
  FakeClock clock;
  auto queue = MakeQueue(clock, {.visibility_timeout = 30s});
  ASSERT_TRUE(queue->Send(Message("a")).ok());
  ReceivedMessage m = ReceiveOne(*queue);
  clock.Advance(31s);
  EXPECT_THAT(Counts(*queue), ElementsAre(1, 0, 0));  // visible again, back in the ready queue
  EXPECT_TRUE(queue->Delete(m.receipt_handle).ok());
  EXPECT_THAT(Counts(*queue), ElementsAre(0, 0, 0));
  // The tombstone left in the ready queue is skipped; a later message is delivered.
  ASSERT_TRUE(queue->Send(Message("b")).ok());
  std::vector<ReceivedMessage> received = ReceiveNow(*queue);
  ASSERT_THAT(received, SizeIs(1));
  EXPECT_EQ(received[0].body, "b");
  EXPECT_THAT(Counts(*queue), ElementsAre(0, 1, 0));
}

TEST(InMemoryQueueTest, DeletingTwiceWithTheSameHandleFails) {
  FakeClock clock;
  auto queue = MakeQueue(clock);
  ASSERT_TRUE(queue->Send(Message("a")).ok());
  ReceivedMessage m = ReceiveOne(*queue);
  EXPECT_TRUE(queue->Delete(m.receipt_handle).ok());
  ExpectError(queue->Delete(m.receipt_handle), "ReceiptHandleIsInvalid");
  ExpectError(queue->ChangeVisibility(m.receipt_handle, 0s), "ReceiptHandleIsInvalid");
}

TEST(InMemoryQueueTest, ChangeVisibilityOnAMessageNoLongerInFlight) {
  FakeClock clock;
  auto queue = MakeQueue(clock, {.visibility_timeout = 30s});
  ASSERT_TRUE(queue->Send(Message("a")).ok());
  ReceivedMessage m = ReceiveOne(*queue);
  clock.Advance(30s);  // visible again, though no Receive has run since
  ExpectError(queue->ChangeVisibility(m.receipt_handle, 60s), "MessageNotInflight");
  EXPECT_THAT(Counts(*queue), ElementsAre(1, 0, 0));
  EXPECT_EQ(ReceiveOne(*queue).receive_count, 2);

  ASSERT_TRUE(queue->Send(Message("b")).ok());
  ReceivedMessage b = ReceiveOne(*queue);
  ASSERT_TRUE(queue->ChangeVisibility(b.receipt_handle, 0s).ok());
  ExpectError(queue->ChangeVisibility(b.receipt_handle, 10s), "MessageNotInflight");
  EXPECT_TRUE(queue->Delete(b.receipt_handle).ok());  // still its newest handle
}

TEST(InMemoryQueueTest, MalformedAndForeignHandlesAreRejected) {
  FakeClock clock;
  auto queue = MakeQueue(clock);
  auto other = MakeQueue(clock);
  ASSERT_TRUE(other->Send(Message("a")).ok());
  ReceivedMessage foreign = ReceiveOne(*other);
  for (const std::string& handle :
       {std::string(), std::string("nonsense"), std::string(15, 'z'), std::string(15, 'A'),
        std::string(15, '!'), foreign.receipt_handle, foreign.receipt_handle + "A"}) {
    ExpectError(queue->Delete(handle), "ReceiptHandleIsInvalid");
    ExpectError(queue->ChangeVisibility(handle, 1s), "ReceiptHandleIsInvalid");
  }
  EXPECT_TRUE(other->Delete(foreign.receipt_handle).ok());
}

TEST(InMemoryQueueTest, DelayedMessageBecomesVisibleWhenDue) {
  FakeClock clock;
  auto queue = MakeQueue(clock);
  ASSERT_TRUE(queue->Send(Message("later", 10s)).ok());
  EXPECT_THAT(Counts(*queue), ElementsAre(0, 0, 1));
  clock.Advance(9s);
  EXPECT_THAT(ReceiveNow(*queue), IsEmpty());
  clock.Advance(1s);
  EXPECT_THAT(Counts(*queue), ElementsAre(1, 0, 0));
  ReceivedMessage m = ReceiveOne(*queue);
  EXPECT_EQ(m.body, "later");
  EXPECT_EQ(m.sent_timestamp, clock.WallNow() - 10s);  // SentTimestamp is the send, not the due time
}

TEST(InMemoryQueueTest, QueueDefaultDelayAppliesToMessagesWithoutOne) {
  FakeClock clock;
  auto queue = MakeQueue(clock, {.delay = 5s});
  ASSERT_TRUE(queue->Send(Message("default")).ok());
  ASSERT_TRUE(queue->Send(Message("own", 20s)).ok());
  clock.Advance(4s);
  EXPECT_THAT(ReceiveNow(*queue), IsEmpty());
  clock.Advance(1s);
  std::vector<ReceivedMessage> received = ReceiveNow(*queue);
  ASSERT_THAT(received, SizeIs(1));
  EXPECT_EQ(received[0].body, "default");
  clock.Advance(15s);
  received = ReceiveNow(*queue);
  ASSERT_THAT(received, SizeIs(1));
  EXPECT_EQ(received[0].body, "own");
}

TEST(InMemoryQueueTest, RetentionDropsReadyMessages) {
  FakeClock clock;
  auto queue = MakeQueue(clock, {.retention = 60s});
  ASSERT_TRUE(queue->Send(Message("old")).ok());
  clock.Advance(30s);
  ASSERT_TRUE(queue->Send(Message("young")).ok());
  clock.Advance(30s);
  EXPECT_THAT(Counts(*queue), ElementsAre(1, 0, 0));  // counted right before any Receive
  std::vector<ReceivedMessage> received = ReceiveNow(*queue);
  ASSERT_THAT(received, SizeIs(1));
  EXPECT_EQ(received[0].body, "young");
}

TEST(InMemoryQueueTest, RetentionDropsMessagesThatReappearedAfterTheirVisibility) {
  FakeClock clock;
  auto queue = MakeQueue(clock, {.visibility_timeout = 10s, .retention = 60s});
  ASSERT_TRUE(queue->Send(Message("a")).ok());
  ReceivedMessage m = ReceiveOne(*queue);
  clock.Advance(20s);
  EXPECT_THAT(Counts(*queue), ElementsAre(1, 0, 0));
  clock.Advance(40s);
  EXPECT_THAT(Counts(*queue), ElementsAre(0, 0, 0));
  EXPECT_THAT(ReceiveNow(*queue), IsEmpty());
  ExpectError(queue->Delete(m.receipt_handle), "ReceiptHandleIsInvalid");
}

TEST(InMemoryQueueTest, RetentionDropsInFlightMessages) {
  FakeClock clock;
  auto queue = MakeQueue(clock, {.retention = 60s});
  ASSERT_TRUE(queue->Send(Message("a")).ok());
  ReceivedMessage m = ReceiveOne(*queue, 12h);
  clock.Advance(59s);
  EXPECT_THAT(Counts(*queue), ElementsAre(0, 1, 0));
  clock.Advance(1s);
  EXPECT_THAT(Counts(*queue), ElementsAre(0, 0, 0));
  ExpectError(queue->Delete(m.receipt_handle), "ReceiptHandleIsInvalid");
  ExpectError(queue->ChangeVisibility(m.receipt_handle, 1s), "ReceiptHandleIsInvalid");
}

TEST(InMemoryQueueTest, RetentionCheckedOnDeleteBeforeAnyReceiveNotices) {
  FakeClock clock;
  auto queue = MakeQueue(clock, {.retention = 60s});
  ASSERT_TRUE(queue->Send(Message("a")).ok());
  ReceivedMessage m = ReceiveOne(*queue, 12h);
  clock.Advance(61s);
  ExpectError(queue->Delete(m.receipt_handle), "ReceiptHandleIsInvalid");
  EXPECT_THAT(Counts(*queue), ElementsAre(0, 0, 0));
}

TEST(InMemoryQueueTest, RetentionDropsDelayedMessages) {
  FakeClock clock;
  auto queue = MakeQueue(clock, {.retention = 60s});
  ASSERT_TRUE(queue->Send(Message("a", 15min)).ok());
  ASSERT_TRUE(queue->Send(Message("b", 15min)).ok());
  clock.Advance(60s);
  EXPECT_THAT(Counts(*queue), ElementsAre(0, 0, 0));
  clock.Advance(15min);
  EXPECT_THAT(ReceiveNow(*queue), IsEmpty());
  EXPECT_THAT(Counts(*queue), ElementsAre(0, 0, 0));
}

TEST(InMemoryQueueTest, ReceiveCountAndTimestamps) {
  const auto start = std::chrono::system_clock::time_point(std::chrono::seconds(1767225600));
  FakeClock clock(start);
  auto queue = MakeQueue(clock, {.visibility_timeout = 30s});
  ASSERT_TRUE(queue->Send(Message("a")).ok());
  clock.Advance(5s);
  ReceivedMessage first = ReceiveOne(*queue);
  EXPECT_EQ(first.receive_count, 1);
  EXPECT_EQ(first.sent_timestamp, start);
  EXPECT_EQ(first.first_receive_timestamp, start + 5s);
  for (int count = 2; count <= 4; ++count) {
    clock.Advance(30s);
    ReceivedMessage m = ReceiveOne(*queue);
    EXPECT_EQ(m.receive_count, count);
    EXPECT_EQ(m.sent_timestamp, start);
    EXPECT_EQ(m.first_receive_timestamp, start + 5s);
  }
}

TEST(InMemoryQueueTest, AttributesRoundTrip) {
  FakeClock clock;
  auto queue = MakeQueue(clock);
  OutgoingMessage message = Message("with attributes");
  message.attributes["text"] = StringAttribute("String", "héllo ☃");
  message.attributes["count"] = StringAttribute("Number.int", "-42");
  message.attributes["blob"] = BinaryAttribute("Binary", std::string("\0\x01\xff", 3));
  message.group_id = "g";
  ASSERT_TRUE(queue->Send(message).ok());
  ReceivedMessage m = ReceiveOne(*queue);
  EXPECT_EQ(m.attributes, message.attributes);
  EXPECT_EQ(m.group_id, "g");
}

TEST(InMemoryQueueTest, BodySizeLimitCountsAttributes) {
  FakeClock clock;
  auto queue = MakeQueue(clock);
  EXPECT_TRUE(queue->Send(Message(std::string(kMaxMessageBytes, 'x'))).ok());
  ExpectError(queue->Send(Message(std::string(kMaxMessageBytes + 1, 'x'))).status(),
              "InvalidParameterValue");

  OutgoingMessage message;
  message.attributes["name"] = StringAttribute("String", "value");  // 4 + 6 + 5
  message.body = std::string(kMaxMessageBytes - 15, 'y');
  ASSERT_EQ(MessageSize(message), kMaxMessageBytes);
  EXPECT_TRUE(queue->Send(message).ok());
  message.body.push_back('y');
  ExpectError(queue->Send(message).status(), "InvalidParameterValue");

  std::vector<ReceivedMessage> received = ReceiveNow(*queue);
  ASSERT_THAT(received, SizeIs(2));
  EXPECT_EQ(received[0].body.size() + received[1].body.size(), 2 * kMaxMessageBytes - 15);
}

TEST(InMemoryQueueTest, RedrivesToDeadLetterQueueAfterMaxReceiveCount) {
  FakeClock clock;
  auto dlq = MakeQueue(clock, {.name = "dlq"});
  auto queue = MakeQueue(clock, {.visibility_timeout = 30s, .max_receive_count = 2,
                                 .dead_letter_queue = dlq.get()});
  OutgoingMessage message = Message("poison");
  message.attributes["kind"] = StringAttribute("String", "bad");
  StatusOr<SendResult> sent = queue->Send(message);
  ASSERT_TRUE(sent.ok());
  const auto sent_at = clock.WallNow();

  EXPECT_EQ(ReceiveOne(*queue).receive_count, 1);
  clock.Advance(30s);
  ReceivedMessage second = ReceiveOne(*queue);
  EXPECT_EQ(second.receive_count, 2);
  clock.Advance(30s);
  // Its receive count equals max_receive_count: the next receive moves it instead of delivering.
  EXPECT_THAT(ReceiveNow(*queue), IsEmpty());
  EXPECT_THAT(Counts(*queue), ElementsAre(0, 0, 0));
  ExpectError(queue->Delete(second.receipt_handle), "ReceiptHandleIsInvalid");

  StatusOr<std::vector<ReceivedMessage>> peeked = PeekInMemoryQueue(*dlq);
  ASSERT_TRUE(peeked.ok());
  ASSERT_THAT(*peeked, SizeIs(1));
  EXPECT_EQ((*peeked)[0].message_id, sent->message_id);
  EXPECT_TRUE((*peeked)[0].receipt_handle.empty());
  EXPECT_THAT(Counts(*dlq), ElementsAre(1, 0, 0));  // Peek changed nothing

  ReceivedMessage dead = ReceiveOne(*dlq);
  EXPECT_EQ(dead.message_id, sent->message_id);
  EXPECT_EQ(dead.body, "poison");
  EXPECT_EQ(dead.md5_of_body, sent->md5_of_body);
  EXPECT_EQ(dead.attributes, message.attributes);
  EXPECT_EQ(dead.sent_timestamp, sent_at);
  EXPECT_EQ(dead.receive_count, 3);  // SQS keeps ApproximateReceiveCount across the move
  EXPECT_TRUE(dlq->Delete(dead.receipt_handle).ok());
}

TEST(InMemoryQueueTest, DeadLetterRetentionCountsFromTheOriginalSend) {
  FakeClock clock;
  auto dlq = MakeQueue(clock, {.retention = 10min, .name = "dlq"});
  auto queue = MakeQueue(clock, {.visibility_timeout = 30s, .retention = 14 * 24h, .max_receive_count = 1,
                                 .dead_letter_queue = dlq.get()});
  ASSERT_TRUE(queue->Send(Message("a")).ok());
  ReceiveOne(*queue);
  clock.Advance(9min);
  EXPECT_THAT(ReceiveNow(*queue), IsEmpty());  // moved to the dead-letter queue at 9 min
  EXPECT_THAT(Counts(*dlq), ElementsAre(1, 0, 0));
  clock.Advance(1min);  // 10 min after the original send
  EXPECT_THAT(Counts(*dlq), ElementsAre(0, 0, 0));
  EXPECT_THAT(ReceiveNow(*dlq), IsEmpty());
}

TEST(InMemoryQueueTest, RedriveIntoAnExpiredDeadLetterRetentionDropsTheMessage) {
  FakeClock clock;
  auto dlq = MakeQueue(clock, {.retention = 60s, .name = "dlq"});
  auto queue = MakeQueue(clock, {.visibility_timeout = 30s, .max_receive_count = 1,
                                 .dead_letter_queue = dlq.get()});
  ASSERT_TRUE(queue->Send(Message("a")).ok());
  ReceiveOne(*queue);
  clock.Advance(2min);
  EXPECT_THAT(ReceiveNow(*queue), IsEmpty());
  EXPECT_THAT(Counts(*dlq), ElementsAre(0, 0, 0));
}

TEST(InMemoryQueueTest, ReceiveReturnsAtMostMaxMessages) {
  FakeClock clock;
  auto queue = MakeQueue(clock);
  std::set<std::string> ids;
  for (int i = 0; i < 15; ++i) {
    StatusOr<SendResult> sent = queue->Send(Message("m" + std::to_string(i)));
    ASSERT_TRUE(sent.ok());
    ids.insert(sent->message_id);
  }
  EXPECT_EQ(ids.size(), 15u);
  std::vector<ReceivedMessage> first = ReceiveNow(*queue, 10);
  std::vector<ReceivedMessage> second = ReceiveNow(*queue, 10);
  EXPECT_THAT(first, SizeIs(10));
  EXPECT_THAT(second, SizeIs(5));
  std::set<std::string> handles;
  for (const auto* batch : {&first, &second}) {
    for (const ReceivedMessage& m : *batch) {
      EXPECT_EQ(ids.erase(m.message_id), 1u);
      handles.insert(m.receipt_handle);
    }
  }
  EXPECT_THAT(ids, IsEmpty());
  EXPECT_EQ(handles.size(), 15u);
}

TEST(InMemoryQueueTest, ErrorNames) {
  FakeClock clock;
  auto queue = MakeQueue(clock);

  std::vector<SendBatchEntry> eleven(11);
  for (int i = 0; i < 11; ++i) eleven[i] = {"e" + std::to_string(i), Message("x")};
  ExpectError(queue->SendBatch(eleven).status(), "TooManyEntriesInBatchRequest");
  ExpectError(queue->SendBatch({}).status(), "EmptyBatchRequest");
  ExpectError(queue->SendBatch({{"a", Message("x")}, {"a", Message("y")}}).status(),
              "BatchEntryIdsNotDistinct");
  ExpectError(queue->SendBatch({{"a b", Message("x")}}).status(), "InvalidBatchEntryId");
  ExpectError(queue->SendBatch({{std::string(81, 'a'), Message("x")}}).status(), "InvalidBatchEntryId");
  ExpectError(queue->SendBatch({{"a", Message(std::string(600 * 1024, 'x'))},
                                {"b", Message(std::string(600 * 1024, 'x'))}})
                  .status(),
              "BatchRequestTooLong");
  ExpectError(queue->DeleteBatch({}).status(), "EmptyBatchRequest");
  ExpectError(queue->ChangeVisibilityBatch({{"a", "h", 1s}, {"a", "h", 1s}}).status(),
              "BatchEntryIdsNotDistinct");

  ExpectError(queue->Send(Message("x", 901s)).status(), "InvalidParameterValue");
  ExpectError(queue->Send(Message("x", -1s)).status(), "InvalidParameterValue");
  ExpectError(queue->Send(Message(std::string(kMaxMessageBytes + 1, 'x'))).status(),
              "InvalidParameterValue");
  ExpectError(queue->Send(Message("")).status(), "InvalidParameterValue");
  ExpectError(queue->Send(Message("bell \x07")).status(), "InvalidMessageContents");
  ExpectError(queue->Send(Message("bad utf-8 \xc3")).status(), "InvalidMessageContents");
  ExpectError(queue->Send(Message("\xef\xbf\xbe")).status(), "InvalidMessageContents");  // U+FFFE

  for (int max : {0, 11, -1}) {
    ExpectError(queue->Receive(Options(max)).status(), "InvalidParameterValue");
  }
  ExpectError(queue->Receive(Options(1, 21s)).status(), "InvalidParameterValue");
  ExpectError(queue->Receive(Options(1, -1s)).status(), "InvalidParameterValue");
  ExpectError(queue->Receive(Options(1, 0s, 12h + 1s)).status(), "InvalidParameterValue");
  ExpectError(queue->Receive(Options(1, 0s, -1s)).status(), "InvalidParameterValue");

  ASSERT_TRUE(queue->Send(Message("x")).ok());
  ReceivedMessage m = ReceiveOne(*queue);
  ExpectError(queue->ChangeVisibility(m.receipt_handle, 12h + 1s), "InvalidParameterValue");
  ExpectError(queue->ChangeVisibility(m.receipt_handle, -1s), "InvalidParameterValue");
  ExpectError(queue->Delete("bogus"), "ReceiptHandleIsInvalid");
  ASSERT_TRUE(queue->ChangeVisibility(m.receipt_handle, 0s).ok());
  ExpectError(queue->ChangeVisibility(m.receipt_handle, 5s), "MessageNotInflight");
  EXPECT_THAT(Counts(*queue), ElementsAre(1, 0, 0));
}

TEST(InMemoryQueueTest, SendBatchReportsEachEntry) {
  FakeClock clock;
  auto queue = MakeQueue(clock);
  StatusOr<BatchResult<SendResult>> result = queue->SendBatch({
      {"ok1", Message("one")},
      {"too_late", Message("x", 16min)},
      {"ok2", Message("two", 5s)},
      {"control", Message("\x01")},
      {"ok3", Message("three")},
  });
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_THAT(result->successful, SizeIs(3));
  EXPECT_EQ(result->successful[0].id, "ok1");
  EXPECT_EQ(result->successful[1].id, "ok2");
  EXPECT_EQ(result->successful[2].id, "ok3");
  EXPECT_EQ(result->successful[0].value.md5_of_body, Md5OfBody("one"));
  ASSERT_THAT(result->failed, SizeIs(2));
  EXPECT_EQ(result->failed[0].id, "too_late");
  EXPECT_EQ(result->failed[0].status.error_name(), "InvalidParameterValue");
  EXPECT_TRUE(result->failed[0].sender_fault);
  EXPECT_EQ(result->failed[1].id, "control");
  EXPECT_EQ(result->failed[1].status.error_name(), "InvalidMessageContents");

  EXPECT_THAT(Counts(*queue), ElementsAre(2, 0, 1));
  std::vector<ReceivedMessage> received = ReceiveNow(*queue);
  ASSERT_THAT(received, SizeIs(2));
  std::set<std::string> bodies{received[0].body, received[1].body};
  EXPECT_EQ(bodies, (std::set<std::string>{"one", "three"}));
  clock.Advance(5s);
  EXPECT_EQ(ReceiveOne(*queue).body, "two");
}

TEST(InMemoryQueueTest, DeleteBatchReportsEachEntry) {
  FakeClock clock;
  auto queue = MakeQueue(clock, {.visibility_timeout = 30s});
  for (const char* body : {"a", "b", "c"}) ASSERT_TRUE(queue->Send(Message(body)).ok());
  std::vector<ReceivedMessage> received = ReceiveNow(*queue);
  ASSERT_THAT(received, SizeIs(3));
  clock.Advance(30s);
  ReceivedMessage c_again = ReceiveOne(*queue);  // makes one of the three handles stale
  std::string stale;
  std::vector<DeleteBatchEntry> entries;
  for (std::size_t i = 0; i < received.size(); ++i) {
    if (received[i].message_id == c_again.message_id) {
      stale = received[i].receipt_handle;
    } else {
      entries.push_back({"m" + std::to_string(i), received[i].receipt_handle});
    }
  }
  entries.push_back({"stale", stale});
  entries.push_back({"garbage", "not-a-handle"});
  entries.push_back({"twice", entries[0].receipt_handle});
  StatusOr<BatchResult<Empty>> result = queue->DeleteBatch(entries);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_THAT(result->successful, SizeIs(2));
  ASSERT_THAT(result->failed, SizeIs(3));
  for (const BatchEntryFailure& failure : result->failed) {
    EXPECT_EQ(failure.status.error_name(), "ReceiptHandleIsInvalid") << failure.id;
  }
  EXPECT_EQ(result->failed[0].id, "stale");
  EXPECT_EQ(result->failed[1].id, "garbage");
  EXPECT_EQ(result->failed[2].id, "twice");
  EXPECT_THAT(Counts(*queue), ElementsAre(0, 1, 0));
  EXPECT_TRUE(queue->Delete(c_again.receipt_handle).ok());
}

TEST(InMemoryQueueTest, ChangeVisibilityBatchReportsEachEntry) {
  FakeClock clock;
  auto queue = MakeQueue(clock, {.visibility_timeout = 30s});
  for (const char* body : {"a", "b", "c"}) ASSERT_TRUE(queue->Send(Message(body)).ok());
  std::vector<ReceivedMessage> received = ReceiveNow(*queue);
  ASSERT_THAT(received, SizeIs(3));
  ASSERT_TRUE(queue->Delete(received[2].receipt_handle).ok());
  StatusOr<BatchResult<Empty>> result = queue->ChangeVisibilityBatch({
      {"release", received[0].receipt_handle, 0s},
      {"extend", received[1].receipt_handle, 100s},
      {"deleted", received[2].receipt_handle, 10s},
      {"too_long", received[1].receipt_handle, 13h},
  });
  ASSERT_TRUE(result.ok());
  ASSERT_THAT(result->successful, SizeIs(2));
  EXPECT_EQ(result->successful[0].id, "release");
  EXPECT_EQ(result->successful[1].id, "extend");
  ASSERT_THAT(result->failed, SizeIs(2));
  EXPECT_EQ(result->failed[0].id, "deleted");
  EXPECT_EQ(result->failed[0].status.error_name(), "ReceiptHandleIsInvalid");
  EXPECT_EQ(result->failed[1].id, "too_long");
  EXPECT_EQ(result->failed[1].status.error_name(), "InvalidParameterValue");
  EXPECT_THAT(Counts(*queue), ElementsAre(1, 1, 0));
  ReceivedMessage released = ReceiveOne(*queue);
  EXPECT_EQ(released.message_id, received[0].message_id);
  ASSERT_TRUE(queue->Delete(released.receipt_handle).ok());
  clock.Advance(99s);
  EXPECT_THAT(ReceiveNow(*queue), IsEmpty());
  clock.Advance(1s);
  EXPECT_EQ(ReceiveOne(*queue).message_id, received[1].message_id);
}

TEST(InMemoryQueueTest, PeekListsEverythingWithoutReceiving) {
  FakeClock clock;
  auto queue = MakeQueue(clock);
  ASSERT_TRUE(queue->Send(Message("ready")).ok());
  clock.Advance(1s);
  ASSERT_TRUE(queue->Send(Message("delayed", 60s)).ok());
  clock.Advance(1s);
  ASSERT_TRUE(queue->Send(Message("in flight")).ok());
  clock.Advance(1s);
  ASSERT_TRUE(queue->Send(Message("deleted")).ok());
  // Receive the last two (FIFO here: one sender thread), delete one.
  std::vector<ReceivedMessage> received = ReceiveNow(*queue, 3);
  ASSERT_THAT(received, SizeIs(3));
  ASSERT_TRUE(queue->ChangeVisibility(received[0].receipt_handle, 0s).ok());  // "ready" again
  ASSERT_TRUE(queue->Delete(received[2].receipt_handle).ok());
  StatusOr<std::vector<ReceivedMessage>> peeked = PeekInMemoryQueue(*queue);
  ASSERT_TRUE(peeked.ok());
  std::vector<std::string> bodies;
  for (const ReceivedMessage& m : *peeked) bodies.push_back(m.body);
  EXPECT_THAT(bodies, ElementsAre("ready", "delayed", "in flight"));
  EXPECT_THAT(Counts(*queue), ElementsAre(1, 1, 1));
  EXPECT_EQ(ReceiveOne(*queue).body, "ready");
}

TEST(InMemoryQueueTest, RejectsInvalidOptions) {
  FakeClock clock;
  auto other = MakeQueue(clock);
  const std::vector<InMemoryQueueOptions> bad = {
      {.visibility_timeout = 12h + 1s},
      {.visibility_timeout = -1s},
      {.retention = 59s},
      {.retention = 14 * 24h + 1s},
      {.delay = 901s},
      {.delay = -1s},
      {.max_receive_count = 3},  // no dead-letter queue
      {.max_receive_count = -1},
      {.max_receive_count = 1001, .dead_letter_queue = other.get()},
      {.name = ""},
      {.name = "has space"},
  };
  for (const InMemoryQueueOptions& options : bad) {
    StatusOr<std::unique_ptr<Queue>> queue = NewInMemoryQueue(options, clock);
    ASSERT_FALSE(queue.ok()) << options.name;
    EXPECT_EQ(queue.status().error_name(), "InvalidParameterValue");
    EXPECT_EQ(queue.status().code(), StatusCode::kInvalidArgument);
  }
}

// A Queue that is not an in-memory one.
class NotInMemoryQueue final : public Queue {
 public:
  StatusOr<SendResult> Send(const OutgoingMessage&) override { return UnimplementedError(""); }
  StatusOr<BatchResult<SendResult>> SendBatch(const std::vector<SendBatchEntry>&) override {
    return UnimplementedError("");
  }
  StatusOr<std::vector<ReceivedMessage>> Receive(const ReceiveOptions&) override {
    return UnimplementedError("");
  }
  Status Delete(std::string_view) override { return UnimplementedError(""); }
  StatusOr<BatchResult<Empty>> DeleteBatch(const std::vector<DeleteBatchEntry>&) override {
    return UnimplementedError("");
  }
  Status ChangeVisibility(std::string_view, std::chrono::seconds) override { return UnimplementedError(""); }
  StatusOr<BatchResult<Empty>> ChangeVisibilityBatch(const std::vector<ChangeVisibilityBatchEntry>&) override {
    return UnimplementedError("");
  }
  StatusOr<QueueAttributes> GetAttributes() override { return UnimplementedError(""); }
  void Shutdown() override {}
};

TEST(InMemoryQueueTest, DeadLetterQueueMustBeInMemory) {
  FakeClock clock;
  NotInMemoryQueue other;
  EXPECT_FALSE(NewInMemoryQueue({.max_receive_count = 1, .dead_letter_queue = &other}, clock).ok());
  EXPECT_FALSE(PeekInMemoryQueue(other).ok());
}

// Long polling: the receiver runs on another thread; the test thread waits (really) until that
// thread is inside Clock::WaitUntil before acting, so nothing depends on sleeping.
std::future<std::vector<ReceivedMessage>> LongPoll(Queue& queue, std::chrono::seconds wait = 20s) {
  return std::async(std::launch::async, [&queue, wait] {
    StatusOr<std::vector<ReceivedMessage>> received = queue.Receive(Options(10, wait));
    EXPECT_TRUE(received.ok()) << received.status().ToString();
    return received.ok() ? std::move(*received) : std::vector<ReceivedMessage>{};
  });
}

TEST(InMemoryQueueLongPollTest, ReturnsAsSoonAsAMessageIsSent) {
  FakeClock clock;
  auto queue = MakeQueue(clock);
  auto poll = LongPoll(*queue);
  clock.BlockUntilWaiters(1);
  ASSERT_TRUE(queue->Send(Message("wake up")).ok());
  std::vector<ReceivedMessage> received = poll.get();  // no Advance: the send alone wakes it
  ASSERT_THAT(received, SizeIs(1));
  EXPECT_EQ(received[0].body, "wake up");
}

TEST(InMemoryQueueLongPollTest, ReturnsWhenADelayedMessageFallsDue) {
  FakeClock clock;
  auto queue = MakeQueue(clock);
  ASSERT_TRUE(queue->Send(Message("delayed", 5s)).ok());
  auto poll = LongPoll(*queue);
  clock.BlockUntilWaiters(1);
  clock.Advance(5s);
  std::vector<ReceivedMessage> received = poll.get();
  ASSERT_THAT(received, SizeIs(1));
  EXPECT_EQ(received[0].body, "delayed");
}

TEST(InMemoryQueueLongPollTest, ReturnsWhenADelayedMessageSentDuringThePollFallsDue) {
  FakeClock clock;
  auto queue = MakeQueue(clock);
  auto poll = LongPoll(*queue);
  clock.BlockUntilWaiters(1);
  ASSERT_TRUE(queue->Send(Message("delayed", 5s)).ok());
  // The poll re-plans its wake-up for the due time; if Advance runs before it does, its new
  // deadline has already passed and WaitUntil returns at once.
  clock.Advance(5s);
  std::vector<ReceivedMessage> received = poll.get();
  ASSERT_THAT(received, SizeIs(1));
  EXPECT_EQ(received[0].body, "delayed");
}

TEST(InMemoryQueueLongPollTest, ReturnsWhenAnInvisibleMessageReappears) {
  FakeClock clock;
  auto queue = MakeQueue(clock, {.visibility_timeout = 10s});
  ASSERT_TRUE(queue->Send(Message("again")).ok());
  ReceiveOne(*queue);
  auto poll = LongPoll(*queue);
  clock.BlockUntilWaiters(1);
  clock.Advance(10s);
  std::vector<ReceivedMessage> received = poll.get();
  ASSERT_THAT(received, SizeIs(1));
  EXPECT_EQ(received[0].receive_count, 2);
}

TEST(InMemoryQueueLongPollTest, ReturnsWhenAMessageIsReleased) {
  FakeClock clock;
  auto queue = MakeQueue(clock);
  ASSERT_TRUE(queue->Send(Message("released")).ok());
  ReceivedMessage m = ReceiveOne(*queue);
  auto poll = LongPoll(*queue);
  clock.BlockUntilWaiters(1);
  ASSERT_TRUE(queue->ChangeVisibility(m.receipt_handle, 0s).ok());
  std::vector<ReceivedMessage> received = poll.get();
  ASSERT_THAT(received, SizeIs(1));
  EXPECT_EQ(received[0].body, "released");
}

TEST(InMemoryQueueLongPollTest, ReturnsEmptyAtTheEndOfTheWait) {
  FakeClock clock;
  auto queue = MakeQueue(clock);
  auto poll = LongPoll(*queue, 20s);
  clock.BlockUntilWaiters(1);
  clock.Advance(20s);
  EXPECT_THAT(poll.get(), IsEmpty());
}

TEST(InMemoryQueueLongPollTest, ReturnsAtOnceOnShutdown) {
  FakeClock clock;
  auto queue = MakeQueue(clock);
  auto poll = LongPoll(*queue);
  clock.BlockUntilWaiters(1);
  queue->Shutdown();
  EXPECT_THAT(poll.get(), IsEmpty());
  // Later long polls return at once (this would hang otherwise), and other calls keep working.
  ASSERT_TRUE(queue->Send(Message("after")).ok());
  StatusOr<std::vector<ReceivedMessage>> later = queue->Receive(Options(1, 20s));
  ASSERT_TRUE(later.ok());
  EXPECT_THAT(*later, IsEmpty());
  EXPECT_THAT(Counts(*queue), ElementsAre(1, 0, 0));
}

TEST(InMemoryQueueLongPollTest, ConcurrentPollersShareTheMessages) {
  FakeClock clock;
  auto queue = MakeQueue(clock);
  auto p1 = LongPoll(*queue);
  auto p2 = LongPoll(*queue);
  clock.BlockUntilWaiters(2);
  ASSERT_TRUE(queue->SendBatch({{"a", Message("a")}, {"b", Message("b")}}).ok());
  // Either poller may take both; the end of the poll releases one left with nothing. A poller
  // woken by this Advance still takes what is visible before giving up.
  clock.Advance(20s);
  std::vector<ReceivedMessage> r1 = p1.get();
  std::vector<ReceivedMessage> r2 = p2.get();
  std::set<std::string> bodies;
  for (const auto* r : {&r1, &r2}) {
    for (const ReceivedMessage& m : *r) EXPECT_TRUE(bodies.insert(m.body).second) << m.body;
  }
  EXPECT_EQ(bodies, (std::set<std::string>{"a", "b"}));
}

}  // namespace
}  // namespace taskpipe
