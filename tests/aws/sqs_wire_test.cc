#include "aws/sqs_wire.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "queue/validate.h"

namespace taskpipe {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::SizeIs;

constexpr char kQueueUrl[] = "https://sqs.us-east-1.amazonaws.com/123456789012/q";
constexpr char kQueueUrlForm[] = "https%3A%2F%2Fsqs.us-east-1.amazonaws.com%2F123456789012%2Fq";

HttpResponse Reply(int status, std::string body, std::vector<std::pair<std::string, std::string>> headers = {}) {
  HttpResponse response;
  response.status = status;
  response.body = std::move(body);
  response.headers = std::move(headers);
  return response;
}

MessageAttribute StringAttribute(std::string type, std::string value) {
  MessageAttribute a;
  a.data_type = std::move(type);
  a.string_value = std::move(value);
  return a;
}

MessageAttribute BinaryAttribute(std::string value) {
  MessageAttribute a;
  a.data_type = "Binary";
  a.binary_value = std::move(value);
  return a;
}

OutgoingMessage FullMessage() {
  OutgoingMessage m;
  m.body = "hello world";
  m.delay = 5s;
  m.attributes["attr.b"] = BinaryAttribute(std::string("\x00\x01\xff", 3));
  m.attributes["n"] = StringAttribute("Number", "42");
  m.attributes["s"] = StringAttribute("String", "x y");
  m.group_id = "g";
  m.deduplication_id = "d";
  return m;
}

std::chrono::system_clock::time_point Millis(std::int64_t ms) {
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
}

// ---------------------------------------------------------------------------------------------
// Requests.

TEST(SqsWireTest, ParseProtocol) {
  EXPECT_EQ(*ParseSqsProtocol("json"), SqsProtocol::kJson);
  EXPECT_EQ(*ParseSqsProtocol("query"), SqsProtocol::kQuery);
  EXPECT_EQ(ParseSqsProtocol("xml").status().code(), StatusCode::kInvalidArgument);
}

TEST(SqsWireTest, JsonSendMessage) {
  SqsWireRequest r = BuildSendMessage(SqsProtocol::kJson, kQueueUrl, FullMessage());
  EXPECT_EQ(r.action, "SendMessage");
  EXPECT_THAT(r.headers, ElementsAre(Pair("Content-Type", "application/x-amz-json-1.0"),
                                     Pair("X-Amz-Target", "AmazonSQS.SendMessage")));
  EXPECT_EQ(r.body,
            R"({"QueueUrl":"https://sqs.us-east-1.amazonaws.com/123456789012/q","MessageBody":"hello world",)"
            R"("DelaySeconds":5,"MessageAttributes":{"attr.b":{"DataType":"Binary","BinaryValue":"AAH/"},)"
            R"("n":{"DataType":"Number","StringValue":"42"},"s":{"DataType":"String","StringValue":"x y"}},)"
            R"("MessageGroupId":"g","MessageDeduplicationId":"d"})");
}

TEST(SqsWireTest, JsonSendMessageMinimalAndEscaped) {
  OutgoingMessage m;
  m.body = "quote \" backslash \\ newline \n tab \t é";
  SqsWireRequest r = BuildSendMessage(SqsProtocol::kJson, kQueueUrl, m);
  EXPECT_EQ(r.body, R"({"QueueUrl":"https://sqs.us-east-1.amazonaws.com/123456789012/q",)"
                    R"("MessageBody":"quote \" backslash \\ newline \n tab \t é"})");
}

TEST(SqsWireTest, QuerySendMessage) {
  SqsWireRequest r = BuildSendMessage(SqsProtocol::kQuery, kQueueUrl, FullMessage());
  EXPECT_EQ(r.action, "SendMessage");
  EXPECT_THAT(r.headers,
              ElementsAre(Pair("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")));
  EXPECT_EQ(r.body, std::string("Action=SendMessage&Version=2012-11-05&QueueUrl=") + kQueueUrlForm +
                        "&MessageBody=hello%20world&DelaySeconds=5"
                        "&MessageAttribute.1.Name=attr.b&MessageAttribute.1.Value.DataType=Binary"
                        "&MessageAttribute.1.Value.BinaryValue=AAH%2F"
                        "&MessageAttribute.2.Name=n&MessageAttribute.2.Value.DataType=Number"
                        "&MessageAttribute.2.Value.StringValue=42"
                        "&MessageAttribute.3.Name=s&MessageAttribute.3.Value.DataType=String"
                        "&MessageAttribute.3.Value.StringValue=x%20y"
                        "&MessageGroupId=g&MessageDeduplicationId=d");
}

TEST(SqsWireTest, QueryEncodesReservedCharactersAndUtf8) {
  OutgoingMessage m;
  m.body = "a+b&c=d/e%f é\r\n";
  SqsWireRequest r = BuildSendMessage(SqsProtocol::kQuery, kQueueUrl, m);
  EXPECT_EQ(r.body, std::string("Action=SendMessage&Version=2012-11-05&QueueUrl=") + kQueueUrlForm +
                        "&MessageBody=a%2Bb%26c%3Dd%2Fe%25f%20%C3%A9%0D%0A");
}

TEST(SqsWireTest, SendMessageBatch) {
  std::vector<SendBatchEntry> entries(2);
  entries[0].id = "a";
  entries[0].message.body = "x";
  entries[1].id = "b";
  entries[1].message.body = "y";
  entries[1].message.attributes["k"] = StringAttribute("String", "v");
  SqsWireRequest json = BuildSendMessageBatch(SqsProtocol::kJson, kQueueUrl, entries);
  EXPECT_THAT(json.headers, ElementsAre(Pair("Content-Type", "application/x-amz-json-1.0"),
                                        Pair("X-Amz-Target", "AmazonSQS.SendMessageBatch")));
  EXPECT_EQ(json.body, R"({"QueueUrl":"https://sqs.us-east-1.amazonaws.com/123456789012/q","Entries":[)"
                       R"({"Id":"a","MessageBody":"x"},)"
                       R"({"Id":"b","MessageBody":"y","MessageAttributes":{"k":{"DataType":"String","StringValue":"v"}}}]})");
  SqsWireRequest query = BuildSendMessageBatch(SqsProtocol::kQuery, kQueueUrl, entries);
  EXPECT_EQ(query.body, std::string("Action=SendMessageBatch&Version=2012-11-05&QueueUrl=") + kQueueUrlForm +
                            "&SendMessageBatchRequestEntry.1.Id=a&SendMessageBatchRequestEntry.1.MessageBody=x"
                            "&SendMessageBatchRequestEntry.2.Id=b&SendMessageBatchRequestEntry.2.MessageBody=y"
                            "&SendMessageBatchRequestEntry.2.MessageAttribute.1.Name=k"
                            "&SendMessageBatchRequestEntry.2.MessageAttribute.1.Value.DataType=String"
                            "&SendMessageBatchRequestEntry.2.MessageAttribute.1.Value.StringValue=v");
}

TEST(SqsWireTest, ReceiveMessage) {
  ReceiveOptions options;
  options.max_messages = 10;
  options.wait = 20s;
  SqsWireRequest json = BuildReceiveMessage(SqsProtocol::kJson, kQueueUrl, options);
  EXPECT_THAT(json.headers, ElementsAre(Pair("Content-Type", "application/x-amz-json-1.0"),
                                        Pair("X-Amz-Target", "AmazonSQS.ReceiveMessage")));
  EXPECT_EQ(json.body, R"({"QueueUrl":"https://sqs.us-east-1.amazonaws.com/123456789012/q",)"
                       R"("MaxNumberOfMessages":10,"WaitTimeSeconds":20,"AttributeNames":["All"],)"
                       R"("MessageSystemAttributeNames":["All"],"MessageAttributeNames":["All"]})");
  options.visibility_timeout = 45s;
  options.max_messages = 1;
  options.wait = 0s;
  json = BuildReceiveMessage(SqsProtocol::kJson, kQueueUrl, options);
  EXPECT_EQ(json.body, R"({"QueueUrl":"https://sqs.us-east-1.amazonaws.com/123456789012/q",)"
                       R"("MaxNumberOfMessages":1,"WaitTimeSeconds":0,"VisibilityTimeout":45,"AttributeNames":["All"],)"
                       R"("MessageSystemAttributeNames":["All"],"MessageAttributeNames":["All"]})");
  SqsWireRequest query = BuildReceiveMessage(SqsProtocol::kQuery, kQueueUrl, options);
  EXPECT_EQ(query.body, std::string("Action=ReceiveMessage&Version=2012-11-05&QueueUrl=") + kQueueUrlForm +
                            "&MaxNumberOfMessages=1&WaitTimeSeconds=0&VisibilityTimeout=45&AttributeName.1=All"
                            "&MessageSystemAttributeName.1=All&MessageAttributeName.1=All");
}

TEST(SqsWireTest, DeleteAndChangeVisibility) {
  EXPECT_EQ(BuildDeleteMessage(SqsProtocol::kJson, kQueueUrl, "rh+/=").body,
            R"({"QueueUrl":"https://sqs.us-east-1.amazonaws.com/123456789012/q","ReceiptHandle":"rh+/="})");
  EXPECT_EQ(BuildDeleteMessage(SqsProtocol::kQuery, kQueueUrl, "rh+/=").body,
            std::string("Action=DeleteMessage&Version=2012-11-05&QueueUrl=") + kQueueUrlForm +
                "&ReceiptHandle=rh%2B%2F%3D");
  EXPECT_EQ(BuildChangeMessageVisibility(SqsProtocol::kJson, kQueueUrl, "rh", 60s).body,
            R"({"QueueUrl":"https://sqs.us-east-1.amazonaws.com/123456789012/q","ReceiptHandle":"rh",)"
            R"("VisibilityTimeout":60})");
  EXPECT_EQ(BuildChangeMessageVisibility(SqsProtocol::kQuery, kQueueUrl, "rh", 60s).body,
            std::string("Action=ChangeMessageVisibility&Version=2012-11-05&QueueUrl=") + kQueueUrlForm +
                "&ReceiptHandle=rh&VisibilityTimeout=60");
  EXPECT_EQ(BuildChangeMessageVisibility(SqsProtocol::kJson, kQueueUrl, "rh", 0s).headers[1].second,
            "AmazonSQS.ChangeMessageVisibility");
}

TEST(SqsWireTest, DeleteAndChangeVisibilityBatches) {
  std::vector<DeleteBatchEntry> deletes = {{"a", "h1"}, {"b", "h2"}};
  EXPECT_EQ(BuildDeleteMessageBatch(SqsProtocol::kJson, kQueueUrl, deletes).body,
            R"({"QueueUrl":"https://sqs.us-east-1.amazonaws.com/123456789012/q","Entries":[)"
            R"({"Id":"a","ReceiptHandle":"h1"},{"Id":"b","ReceiptHandle":"h2"}]})");
  EXPECT_EQ(BuildDeleteMessageBatch(SqsProtocol::kQuery, kQueueUrl, deletes).body,
            std::string("Action=DeleteMessageBatch&Version=2012-11-05&QueueUrl=") + kQueueUrlForm +
                "&DeleteMessageBatchRequestEntry.1.Id=a&DeleteMessageBatchRequestEntry.1.ReceiptHandle=h1"
                "&DeleteMessageBatchRequestEntry.2.Id=b&DeleteMessageBatchRequestEntry.2.ReceiptHandle=h2");
  std::vector<ChangeVisibilityBatchEntry> changes = {{"a", "h1", 10s}, {"b", "h2", 0s}};
  SqsWireRequest json = BuildChangeMessageVisibilityBatch(SqsProtocol::kJson, kQueueUrl, changes);
  EXPECT_EQ(json.headers[1].second, "AmazonSQS.ChangeMessageVisibilityBatch");
  EXPECT_EQ(json.body, R"({"QueueUrl":"https://sqs.us-east-1.amazonaws.com/123456789012/q","Entries":[)"
                       R"({"Id":"a","ReceiptHandle":"h1","VisibilityTimeout":10},)"
                       R"({"Id":"b","ReceiptHandle":"h2","VisibilityTimeout":0}]})");
  EXPECT_EQ(BuildChangeMessageVisibilityBatch(SqsProtocol::kQuery, kQueueUrl, changes).body,
            std::string("Action=ChangeMessageVisibilityBatch&Version=2012-11-05&QueueUrl=") + kQueueUrlForm +
                "&ChangeMessageVisibilityBatchRequestEntry.1.Id=a"
                "&ChangeMessageVisibilityBatchRequestEntry.1.ReceiptHandle=h1"
                "&ChangeMessageVisibilityBatchRequestEntry.1.VisibilityTimeout=10"
                "&ChangeMessageVisibilityBatchRequestEntry.2.Id=b"
                "&ChangeMessageVisibilityBatchRequestEntry.2.ReceiptHandle=h2"
                "&ChangeMessageVisibilityBatchRequestEntry.2.VisibilityTimeout=0");
}

TEST(SqsWireTest, GetQueueAttributesAndUrl) {
  EXPECT_EQ(BuildGetQueueAttributes(SqsProtocol::kJson, kQueueUrl).body,
            R"({"QueueUrl":"https://sqs.us-east-1.amazonaws.com/123456789012/q","AttributeNames":[)"
            R"("ApproximateNumberOfMessages","ApproximateNumberOfMessagesNotVisible",)"
            R"("ApproximateNumberOfMessagesDelayed","RedrivePolicy"]})");
  EXPECT_EQ(BuildGetQueueAttributes(SqsProtocol::kQuery, kQueueUrl).body,
            std::string("Action=GetQueueAttributes&Version=2012-11-05&QueueUrl=") + kQueueUrlForm +
                "&AttributeName.1=ApproximateNumberOfMessages&AttributeName.2=ApproximateNumberOfMessagesNotVisible"
                "&AttributeName.3=ApproximateNumberOfMessagesDelayed&AttributeName.4=RedrivePolicy");
  SqsWireRequest json = BuildGetQueueUrl(SqsProtocol::kJson, "tasks.fifo");
  EXPECT_EQ(json.body, R"({"QueueName":"tasks.fifo"})");
  EXPECT_EQ(json.headers[1].second, "AmazonSQS.GetQueueUrl");
  EXPECT_EQ(BuildGetQueueUrl(SqsProtocol::kQuery, "tasks.fifo").body,
            "Action=GetQueueUrl&Version=2012-11-05&QueueName=tasks.fifo");
}

// ---------------------------------------------------------------------------------------------
// Responses: shapes as in the SQS API reference (API_ReceiveMessage, API_SendMessage, ...) and as
// moto_server 5.2.1 sends them.

// moto's reply to a message with body "hi" and attributes a=String "x", b=Binary 00 01: both MD5s
// were computed by moto, independently of queue/validate.cc.
constexpr char kJsonReceive[] = R"({"Messages": [{"MessageId": "9ad23cea-c65a-4262-b421-ecc57a7ebf0a",
  "ReceiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a+/=", "MD5OfBody": "49f68a5c8493ec2c0bf489821c21fc3b",
  "Body": "hi", "Attributes": {"SenderId": "AIDAIT2UOQQY3AUEKVGXU", "SentTimestamp": "1795340360605",
  "ApproximateReceiveCount": "3", "ApproximateFirstReceiveTimestamp": "1795340360622",
  "MessageGroupId": "group-1", "MessageDeduplicationId": "dedup-1", "SequenceNumber": "18849496460467696128"},
  "MD5OfMessageAttributes": "fa20e2def088daf7b14bc51e836c5547",
  "MessageAttributes": {"a": {"StringValue": "x", "DataType": "String"},
                        "b": {"BinaryValue": "AAE=", "DataType": "Binary"}}}]})";

constexpr char kXmlReceive[] =
    R"(<ReceiveMessageResponse xmlns="http://queue.amazonaws.com/doc/2012-11-05/"><ReceiveMessageResult>)"
    R"(<Message><MessageId>9deea5a3-4384-4a88-bff1-e0f2a0b31176</MessageId><ReceiptHandle>rh-q</ReceiptHandle>)"
    R"(<MD5OfBody>2132b3bda00d60e52785208164bff1c8</MD5OfBody><Body>a&#xD;b</Body>)"
    R"(<Attribute><Name>SenderId</Name><Value>AIDAIT2UOQQY3AUEKVGXU</Value></Attribute>)"
    R"(<Attribute><Name>SentTimestamp</Name><Value>1795340362817</Value></Attribute>)"
    R"(<Attribute><Name>ApproximateReceiveCount</Name><Value>1</Value></Attribute>)"
    R"(<Attribute><Name>ApproximateFirstReceiveTimestamp</Name><Value>1795340362835</Value></Attribute>)"
    R"(<MD5OfMessageAttributes>fa20e2def088daf7b14bc51e836c5547</MD5OfMessageAttributes>)"
    R"(<MessageAttribute><Name>a</Name><Value><StringValue>x</StringValue><DataType>String</DataType></Value></MessageAttribute>)"
    R"(<MessageAttribute><Name>b</Name><Value><BinaryValue>AAE=</BinaryValue><DataType>Binary</DataType></Value></MessageAttribute>)"
    R"(</Message></ReceiveMessageResult><ResponseMetadata><RequestId>wpJU</RequestId></ResponseMetadata>)"
    R"(</ReceiveMessageResponse>)";

// The example of the SQS API reference (ReceiveMessage, Query API).
constexpr char kXmlReceiveDocs[] = R"(<ReceiveMessageResponse>
  <ReceiveMessageResult>
    <Message>
      <MessageId>5fea7756-0ea4-451a-a703-a558b933e274</MessageId>
      <ReceiptHandle>MbZj6wDWli+JvwwJaBV+3dcjk2YW2vA3+STFFljTM8tJJg6HRG6PYSasuWXPJB+CwLj1FjgXUv1uSj1gUPAWV66FU/WeR4mq2OKpEGYWbnLmpRCJVAyeMjeU5ZBdtcQ+QEauMZc8ZRv37sIW2iJKq3M9MFx1YvV11A2x/KSbkJ0=</ReceiptHandle>
      <MD5OfBody>fafb00f5732ab283681e124bf8747ed1</MD5OfBody>
      <Body>This is a test message</Body>
      <Attribute><Name>SenderId</Name><Value>195004372649</Value></Attribute>
      <Attribute><Name>SentTimestamp</Name><Value>1238099229000</Value></Attribute>
      <Attribute><Name>ApproximateReceiveCount</Name><Value>5</Value></Attribute>
      <Attribute><Name>ApproximateFirstReceiveTimestamp</Name><Value>1250700979248</Value></Attribute>
    </Message>
  </ReceiveMessageResult>
  <ResponseMetadata>
    <RequestId>b6633655-283d-45b4-aee4-4e84e0ae6afa</RequestId>
  </ResponseMetadata>
</ReceiveMessageResponse>)";

TEST(SqsWireTest, ParseJsonReceive) {
  StatusOr<std::vector<ReceivedMessage>> got = ParseReceiveMessageResponse(SqsProtocol::kJson, Reply(200, kJsonReceive));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_THAT(*got, SizeIs(1));
  const ReceivedMessage& m = got->at(0);
  EXPECT_EQ(m.message_id, "9ad23cea-c65a-4262-b421-ecc57a7ebf0a");
  EXPECT_EQ(m.receipt_handle, "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a+/=");
  EXPECT_EQ(m.body, "hi");
  EXPECT_EQ(m.md5_of_body, "49f68a5c8493ec2c0bf489821c21fc3b");
  EXPECT_EQ(m.receive_count, 3);
  EXPECT_EQ(m.sent_timestamp, Millis(1795340360605));
  EXPECT_EQ(m.first_receive_timestamp, Millis(1795340360622));
  EXPECT_EQ(m.group_id, "group-1");
  EXPECT_EQ(m.deduplication_id, "dedup-1");
  EXPECT_EQ(m.sequence_number, "18849496460467696128");
  MessageAttributes expected;
  expected["a"] = StringAttribute("String", "x");
  expected["b"] = BinaryAttribute(std::string("\x00\x01", 2));
  EXPECT_EQ(m.attributes, expected);
}

TEST(SqsWireTest, ParseXmlReceive) {
  StatusOr<std::vector<ReceivedMessage>> got = ParseReceiveMessageResponse(SqsProtocol::kQuery, Reply(200, kXmlReceive));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_THAT(*got, SizeIs(1));
  const ReceivedMessage& m = got->at(0);
  EXPECT_EQ(m.body, "a\rb");  // &#xD; survives as CR (a raw CR would be normalised to LF)
  EXPECT_EQ(m.receipt_handle, "rh-q");
  EXPECT_EQ(m.receive_count, 1);
  EXPECT_EQ(m.sent_timestamp, Millis(1795340362817));
  EXPECT_EQ(m.attributes.at("b").binary_value, std::string("\x00\x01", 2));
  EXPECT_EQ(m.attributes.at("a").string_value, "x");

  got = ParseReceiveMessageResponse(SqsProtocol::kQuery, Reply(200, kXmlReceiveDocs));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_THAT(*got, SizeIs(1));
  EXPECT_EQ(got->at(0).body, "This is a test message");
  EXPECT_EQ(got->at(0).receive_count, 5);
  EXPECT_EQ(got->at(0).first_receive_timestamp, Millis(1250700979248));
  EXPECT_THAT(got->at(0).attributes, IsEmpty());
}

TEST(SqsWireTest, ParseEmptyReceive) {
  for (const char* body : {"{}", R"({"Messages": []})", R"({"Messages": null})"}) {
    StatusOr<std::vector<ReceivedMessage>> got = ParseReceiveMessageResponse(SqsProtocol::kJson, Reply(200, body));
    ASSERT_TRUE(got.ok()) << body << ": " << got.status().ToString();
    EXPECT_THAT(*got, IsEmpty());
  }
  StatusOr<std::vector<ReceivedMessage>> got = ParseReceiveMessageResponse(
      SqsProtocol::kQuery,
      Reply(200, "<ReceiveMessageResponse><ReceiveMessageResult/><ResponseMetadata><RequestId>x</RequestId>"
                 "</ResponseMetadata></ReceiveMessageResponse>"));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_THAT(*got, IsEmpty());
}

TEST(SqsWireTest, ParseSendMessage) {
  OutgoingMessage sent;
  sent.body = "hi";
  sent.attributes["a"] = StringAttribute("String", "x");
  sent.attributes["b"] = BinaryAttribute(std::string("\x00\x01", 2));
  StatusOr<SendResult> json = ParseSendMessageResponse(
      SqsProtocol::kJson,
      Reply(200, R"({"MD5OfMessageBody": "49f68a5c8493ec2c0bf489821c21fc3b", )"
                 R"("MD5OfMessageAttributes": "fa20e2def088daf7b14bc51e836c5547", )"
                 R"("MessageId": "9ad23cea-c65a-4262-b421-ecc57a7ebf0a", "SequenceNumber": "1000"})"),
      sent);
  ASSERT_TRUE(json.ok()) << json.status().ToString();
  EXPECT_EQ(json->message_id, "9ad23cea-c65a-4262-b421-ecc57a7ebf0a");
  EXPECT_EQ(json->md5_of_body, "49f68a5c8493ec2c0bf489821c21fc3b");
  EXPECT_EQ(json->sequence_number, "1000");
  StatusOr<SendResult> xml = ParseSendMessageResponse(
      SqsProtocol::kQuery,
      Reply(200, "<SendMessageResponse><SendMessageResult><MD5OfMessageBody>49f68a5c8493ec2c0bf489821c21fc3b"
                 "</MD5OfMessageBody><MD5OfMessageAttributes>fa20e2def088daf7b14bc51e836c5547</MD5OfMessageAttributes>"
                 "<MessageId>m-1</MessageId></SendMessageResult><ResponseMetadata><RequestId>r</RequestId>"
                 "</ResponseMetadata></SendMessageResponse>"),
      sent);
  ASSERT_TRUE(xml.ok()) << xml.status().ToString();
  EXPECT_EQ(xml->message_id, "m-1");
  EXPECT_EQ(xml->sequence_number, "");
}

TEST(SqsWireTest, SendMd5MismatchIsDataLoss) {
  OutgoingMessage sent;
  sent.body = "hi";
  StatusOr<SendResult> body = ParseSendMessageResponse(
      SqsProtocol::kJson, Reply(200, R"({"MD5OfMessageBody": "00000000000000000000000000000000", "MessageId": "m"})"),
      sent);
  EXPECT_EQ(body.status().code(), StatusCode::kDataLoss);
  EXPECT_THAT(body.status().message(), HasSubstr("MD5OfMessageBody"));
  sent.attributes["a"] = StringAttribute("String", "y");
  StatusOr<SendResult> attributes = ParseSendMessageResponse(
      SqsProtocol::kQuery,
      Reply(200, "<SendMessageResponse><SendMessageResult><MD5OfMessageBody>49f68a5c8493ec2c0bf489821c21fc3b"
                 "</MD5OfMessageBody><MD5OfMessageAttributes>fa20e2def088daf7b14bc51e836c5547</MD5OfMessageAttributes>"
                 "<MessageId>m-1</MessageId></SendMessageResult></SendMessageResponse>"),
      sent);
  EXPECT_EQ(attributes.status().code(), StatusCode::kDataLoss);
  EXPECT_THAT(attributes.status().message(), HasSubstr("MD5OfMessageAttributes"));
}

std::vector<SendBatchEntry> BatchOf(std::vector<std::pair<std::string, std::string>> id_bodies) {
  std::vector<SendBatchEntry> entries;
  for (auto& [id, body] : id_bodies) {
    SendBatchEntry e;
    e.id = id;
    e.message.body = body;
    entries.push_back(std::move(e));
  }
  return entries;
}

TEST(SqsWireTest, ParseSendBatchJson) {
  // As moto sends it: SenderFault as the string "true".
  std::vector<SendBatchEntry> sent = BatchOf({{"a", "x"}, {"b", "y"}});
  StatusOr<BatchResult<SendResult>> got = ParseSendMessageBatchResponse(
      SqsProtocol::kJson,
      Reply(200, R"({"Successful": [{"Id": "a", "MessageId": "m-a", "MD5OfMessageBody": "9dd4e461268c8034f5c8564e155c67a6"}],)"
                 R"( "Failed": [{"Id": "b", "SenderFault": "true", "Code": "InvalidParameterValue",)"
                 R"( "Message": "Value 1800 for parameter DelaySeconds is invalid."}]})"),
      sent);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_THAT(got->successful, SizeIs(1));
  EXPECT_EQ(got->successful[0].id, "a");
  EXPECT_EQ(got->successful[0].value.message_id, "m-a");
  ASSERT_THAT(got->failed, SizeIs(1));
  EXPECT_EQ(got->failed[0].id, "b");
  EXPECT_TRUE(got->failed[0].sender_fault);
  EXPECT_EQ(got->failed[0].status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(got->failed[0].status.error_name(), "InvalidParameterValue");
  EXPECT_THAT(got->failed[0].status.message(), HasSubstr("DelaySeconds is invalid"));
}

TEST(SqsWireTest, ParseSendBatchXmlWithServerFaultAndMissingEntry) {
  std::vector<SendBatchEntry> sent = BatchOf({{"a", "x"}, {"b", "y"}, {"c", "z"}});
  StatusOr<BatchResult<SendResult>> got = ParseSendMessageBatchResponse(
      SqsProtocol::kQuery,
      Reply(200, "<SendMessageBatchResponse><SendMessageBatchResult>"
                 "<SendMessageBatchResultEntry><Id>a</Id><MessageId>m-a</MessageId>"
                 "<MD5OfMessageBody>9dd4e461268c8034f5c8564e155c67a6</MD5OfMessageBody></SendMessageBatchResultEntry>"
                 "<BatchResultErrorEntry><Id>b</Id><SenderFault>false</SenderFault><Code>InternalError</Code>"
                 "<Message>try again</Message></BatchResultErrorEntry>"
                 "</SendMessageBatchResult></SendMessageBatchResponse>"),
      sent);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_THAT(got->successful, SizeIs(1));
  ASSERT_THAT(got->failed, SizeIs(2));
  EXPECT_EQ(got->failed[0].id, "b");
  EXPECT_FALSE(got->failed[0].sender_fault);
  EXPECT_EQ(got->failed[0].status.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(IsRetryable(got->failed[0].status));
  EXPECT_EQ(got->failed[1].id, "c");  // not in the response at all
  EXPECT_FALSE(got->failed[1].sender_fault);
  EXPECT_EQ(got->failed[1].status.code(), StatusCode::kDataLoss);
}

TEST(SqsWireTest, SendBatchEntryMd5MismatchFailsThatEntryOnly) {
  std::vector<SendBatchEntry> sent = BatchOf({{"a", "x"}, {"b", "y"}});
  StatusOr<BatchResult<SendResult>> got = ParseSendMessageBatchResponse(
      SqsProtocol::kJson,
      Reply(200, R"({"Successful": [{"Id": "a", "MessageId": "m-a", "MD5OfMessageBody": "9dd4e461268c8034f5c8564e155c67a6"},)"
                 R"( {"Id": "b", "MessageId": "m-b", "MD5OfMessageBody": "9dd4e461268c8034f5c8564e155c67a6"}]})"),
      sent);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_THAT(got->successful, SizeIs(1));
  EXPECT_EQ(got->successful[0].id, "a");
  ASSERT_THAT(got->failed, SizeIs(1));
  EXPECT_EQ(got->failed[0].id, "b");
  EXPECT_EQ(got->failed[0].status.code(), StatusCode::kDataLoss);
  EXPECT_FALSE(got->failed[0].sender_fault);
}

TEST(SqsWireTest, BatchResultForAnEntryNotSentIsDataLoss) {
  StatusOr<BatchResult<Empty>> got = ParseEmptyBatchResponse(
      SqsProtocol::kJson, "DeleteMessageBatch", Reply(200, R"({"Successful": [{"Id": "zzz"}], "Failed": []})"), {"a"});
  EXPECT_EQ(got.status().code(), StatusCode::kDataLoss);
  got = ParseEmptyBatchResponse(SqsProtocol::kJson, "DeleteMessageBatch",
                                Reply(200, R"({"Successful": [{"Id": "a"}, {"Id": "a"}]})"), {"a"});
  EXPECT_EQ(got.status().code(), StatusCode::kDataLoss);
}

TEST(SqsWireTest, ParseDeleteBatchBothProtocols) {
  StatusOr<BatchResult<Empty>> json = ParseEmptyBatchResponse(
      SqsProtocol::kJson, "DeleteMessageBatch",
      Reply(200, R"({"Successful": [{"Id": "a"}], "Failed": [{"Id": "b", "SenderFault": true, )"
                 R"("Code": "ReceiptHandleIsInvalid", "Message": "The input receipt handle \"bogus\" is not a valid receipt handle."}]})"),
      {"a", "b"});
  ASSERT_TRUE(json.ok()) << json.status().ToString();
  ASSERT_THAT(json->successful, SizeIs(1));
  ASSERT_THAT(json->failed, SizeIs(1));
  EXPECT_EQ(json->failed[0].status.error_name(), "ReceiptHandleIsInvalid");
  EXPECT_EQ(json->failed[0].status.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(json->failed[0].status.message(), HasSubstr("is not a valid receipt handle"));
  StatusOr<BatchResult<Empty>> xml = ParseEmptyBatchResponse(
      SqsProtocol::kQuery, "ChangeMessageVisibilityBatch",
      Reply(200, "<ChangeMessageVisibilityBatchResponse><ChangeMessageVisibilityBatchResult>"
                 "<ChangeMessageVisibilityBatchResultEntry><Id>a</Id></ChangeMessageVisibilityBatchResultEntry>"
                 "<BatchResultErrorEntry><Id>b</Id><SenderFault>true</SenderFault><Code>ReceiptHandleIsInvalid</Code>"
                 "<Message>The input receipt handle is invalid.</Message></BatchResultErrorEntry>"
                 "</ChangeMessageVisibilityBatchResult></ChangeMessageVisibilityBatchResponse>"),
      {"a", "b"});
  ASSERT_TRUE(xml.ok()) << xml.status().ToString();
  ASSERT_THAT(xml->successful, SizeIs(1));
  EXPECT_EQ(xml->successful[0].id, "a");
  ASSERT_THAT(xml->failed, SizeIs(1));
  EXPECT_EQ(xml->failed[0].status.error_name(), "ReceiptHandleIsInvalid");
}

TEST(SqsWireTest, ParseEmptyResponses) {
  EXPECT_TRUE(ParseEmptyResponse(SqsProtocol::kJson, "DeleteMessage", Reply(200, "{}")).ok());
  EXPECT_TRUE(ParseEmptyResponse(SqsProtocol::kJson, "DeleteMessage", Reply(200, "")).ok());
  EXPECT_TRUE(ParseEmptyResponse(SqsProtocol::kQuery, "DeleteMessage",
                                 Reply(200, "<DeleteMessageResponse><ResponseMetadata><RequestId>r</RequestId>"
                                            "</ResponseMetadata></DeleteMessageResponse>"))
                  .ok());
  Status error = ParseEmptyResponse(
      SqsProtocol::kJson, "DeleteMessage",
      Reply(400, R"({"__type": "com.amazonaws.sqs#ReceiptHandleIsInvalid", "message": "The input receipt handle is invalid."})",
            {{"x-amzn-query-error", "ReceiptHandleIsInvalid;Sender"}}));
  EXPECT_EQ(error.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(error.error_name(), "ReceiptHandleIsInvalid");
  EXPECT_THAT(error.message(), HasSubstr("The input receipt handle is invalid."));
  EXPECT_THAT(error.message(), HasSubstr("DeleteMessage"));
}

// RedrivePolicy is a JSON document in a string, its maxReceiveCount a number or a string of digits
// (SetQueueAttributes in the SQS API reference; the SDK examples use both).
TEST(SqsWireTest, ParseRedrivePolicy) {
  auto json_reply = [](const std::string& policy) {
    return Reply(200, R"({"Attributes": {"ApproximateNumberOfMessages": "0", "RedrivePolicy": )" +
                          nlohmann::json(policy).dump() + "}}");
  };
  StatusOr<QueueAttributes> number = ParseGetQueueAttributesResponse(
      SqsProtocol::kJson, json_reply(R"({"deadLetterTargetArn":"arn:aws:sqs:us-east-1:123456789012:dlq","maxReceiveCount":5})"));
  ASSERT_TRUE(number.ok()) << number.status().ToString();
  EXPECT_EQ(number->max_receive_count, 5);
  StatusOr<QueueAttributes> text = ParseGetQueueAttributesResponse(
      SqsProtocol::kQuery,
      Reply(200, "<GetQueueAttributesResponse><GetQueueAttributesResult>"
                 "<Attribute><Name>RedrivePolicy</Name><Value>{&quot;deadLetterTargetArn&quot;:&quot;arn:aws:sqs:"
                 "us-east-1:123456789012:dlq&quot;,&quot;maxReceiveCount&quot;:&quot;1000&quot;}</Value></Attribute>"
                 "</GetQueueAttributesResult></GetQueueAttributesResponse>"));
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  EXPECT_EQ(text->max_receive_count, 1000);
  StatusOr<QueueAttributes> none =
      ParseGetQueueAttributesResponse(SqsProtocol::kJson, Reply(200, R"({"Attributes": {}})"));
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->max_receive_count, 0);
  for (const std::string bad : {"not json", "[]", R"({"deadLetterTargetArn":"x"})", R"({"maxReceiveCount":0})",
                                R"({"maxReceiveCount":1001})", R"({"maxReceiveCount":"five"})",
                                R"({"maxReceiveCount":-3})", R"({"maxReceiveCount":2.5})",
                                R"({"maxReceiveCount":18446744073709551615})"}) {
    StatusOr<QueueAttributes> r = ParseGetQueueAttributesResponse(SqsProtocol::kJson, json_reply(bad));
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << bad;
    EXPECT_THAT(r.status().message(), HasSubstr("RedrivePolicy")) << bad;
  }
}

TEST(SqsWireTest, ParseQueueAttributesAndUrl) {
  StatusOr<QueueAttributes> json = ParseGetQueueAttributesResponse(
      SqsProtocol::kJson, Reply(200, R"({"Attributes": {"ApproximateNumberOfMessages": "2", )"
                                     R"("ApproximateNumberOfMessagesNotVisible": "1", "ApproximateNumberOfMessagesDelayed": "7"}})"));
  ASSERT_TRUE(json.ok()) << json.status().ToString();
  EXPECT_EQ(json->visible, 2);
  EXPECT_EQ(json->in_flight, 1);
  EXPECT_EQ(json->delayed, 7);
  StatusOr<QueueAttributes> xml = ParseGetQueueAttributesResponse(
      SqsProtocol::kQuery,
      Reply(200, "<GetQueueAttributesResponse><GetQueueAttributesResult>"
                 "<Attribute><Name>ApproximateNumberOfMessages</Name><Value>3</Value></Attribute>"
                 "<Attribute><Name>ApproximateNumberOfMessagesNotVisible</Name><Value>0</Value></Attribute>"
                 "</GetQueueAttributesResult></GetQueueAttributesResponse>"));
  ASSERT_TRUE(xml.ok()) << xml.status().ToString();
  EXPECT_EQ(xml->visible, 3);
  EXPECT_EQ(xml->delayed, 0);
  EXPECT_EQ(ParseGetQueueAttributesResponse(
                SqsProtocol::kJson, Reply(200, R"({"Attributes": {"ApproximateNumberOfMessages": "many"}})"))
                .status()
                .code(),
            StatusCode::kDataLoss);

  StatusOr<std::string> url = ParseGetQueueUrlResponse(
      SqsProtocol::kJson, Reply(200, R"({"QueueUrl": "http://127.0.0.1:5123/123456789012/t1"})"));
  ASSERT_TRUE(url.ok()) << url.status().ToString();
  EXPECT_EQ(*url, "http://127.0.0.1:5123/123456789012/t1");
  url = ParseGetQueueUrlResponse(
      SqsProtocol::kQuery, Reply(200, "<GetQueueUrlResponse><GetQueueUrlResult><QueueUrl>https://q/1/x</QueueUrl>"
                                      "</GetQueueUrlResult></GetQueueUrlResponse>"));
  ASSERT_TRUE(url.ok()) << url.status().ToString();
  EXPECT_EQ(*url, "https://q/1/x");
  EXPECT_EQ(ParseGetQueueUrlResponse(SqsProtocol::kJson, Reply(200, R"({"QueueUrl": "file:///etc"})")).status().code(),
            StatusCode::kDataLoss);
}

// ---------------------------------------------------------------------------------------------
// Errors.

TEST(SqsWireTest, NormalizeErrorCodes) {
  EXPECT_EQ(NormalizeSqsErrorCode("com.amazonaws.sqs#QueueDoesNotExist"), "QueueDoesNotExist");
  EXPECT_EQ(NormalizeSqsErrorCode("QueueDoesNotExist"), "QueueDoesNotExist");
  EXPECT_EQ(NormalizeSqsErrorCode("AWS.SimpleQueueService.NonExistentQueue"), "QueueDoesNotExist");
  EXPECT_EQ(NormalizeSqsErrorCode("AWS.SimpleQueueService.NonExistentQueue;Sender"), "QueueDoesNotExist");
  EXPECT_EQ(NormalizeSqsErrorCode("AWS.SimpleQueueService.TooManyEntriesInBatchRequest"),
            "TooManyEntriesInBatchRequest");
  EXPECT_EQ(NormalizeSqsErrorCode("com.amazonaws.sqs#TooManyEntriesInBatchRequest"), "TooManyEntriesInBatchRequest");
  EXPECT_EQ(NormalizeSqsErrorCode("com.amazonaws.sqs#BatchEntryIdsNotDistinct"), "BatchEntryIdsNotDistinct");
  EXPECT_EQ(NormalizeSqsErrorCode("ReceiptHandleIsInvalid;Sender"), "ReceiptHandleIsInvalid");
  EXPECT_EQ(NormalizeSqsErrorCode("com.amazon.coral.service#UnrecognizedClientException"),
            "UnrecognizedClientException");
  EXPECT_EQ(NormalizeSqsErrorCode("ThrottlingException:http://internal.amazon.com/coral/"), "ThrottlingException");
  EXPECT_EQ(NormalizeSqsErrorCode(""), "");
}

struct ErrorCase {
  const char* code;
  int http_status;
  StatusCode expected;
};

TEST(SqsWireTest, ErrorCodeMapping) {
  const ErrorCase cases[] = {
      {"ThrottlingException", 400, StatusCode::kResourceExhausted},
      {"com.amazonaws.sqs#RequestThrottled", 403, StatusCode::kResourceExhausted},
      {"ThrottledException", 400, StatusCode::kResourceExhausted},
      {"KmsThrottled", 400, StatusCode::kResourceExhausted},
      {"SomethingNew", 429, StatusCode::kResourceExhausted},
      {"ServiceUnavailable", 503, StatusCode::kUnavailable},
      {"InternalError", 500, StatusCode::kUnavailable},
      {"com.amazonaws.sqs#InternalFailure", 500, StatusCode::kUnavailable},
      {"SomethingNew", 502, StatusCode::kUnavailable},
      {"AccessDenied", 403, StatusCode::kPermissionDenied},
      {"InvalidClientTokenId", 403, StatusCode::kPermissionDenied},
      {"SignatureDoesNotMatch", 403, StatusCode::kPermissionDenied},
      {"IncompleteSignature", 400, StatusCode::kPermissionDenied},
      {"ExpiredToken", 400, StatusCode::kPermissionDenied},
      {"com.amazon.coral.service#UnrecognizedClientException", 400, StatusCode::kPermissionDenied},
      {"com.amazonaws.sqs#QueueDoesNotExist", 400, StatusCode::kNotFound},
      {"AWS.SimpleQueueService.NonExistentQueue", 400, StatusCode::kNotFound},
      {"InvalidParameterValue", 400, StatusCode::kInvalidArgument},
      {"MissingParameter", 400, StatusCode::kInvalidArgument},
      {"ReceiptHandleIsInvalid", 400, StatusCode::kInvalidArgument},
      {"AWS.SimpleQueueService.TooManyEntriesInBatchRequest", 400, StatusCode::kInvalidArgument},
      {"AWS.SimpleQueueService.BatchRequestTooLong", 400, StatusCode::kInvalidArgument},
      {"SomethingNew", 200, StatusCode::kUnknown},
  };
  for (const ErrorCase& c : cases) {
    Status s = SqsErrorToStatus("SendMessage", c.code, "the service's words", c.http_status);
    EXPECT_EQ(s.code(), c.expected) << c.code << " " << c.http_status << ": " << s.ToString();
    EXPECT_EQ(s.error_name(), NormalizeSqsErrorCode(c.code));
    EXPECT_THAT(s.message(), HasSubstr("the service's words"));
    EXPECT_THAT(s.message(), HasSubstr("SQS SendMessage"));
  }
  EXPECT_FALSE(IsRetryable(SqsErrorToStatus("X", "InvalidParameterValue", "", 400)));
  EXPECT_TRUE(IsRetryable(SqsErrorToStatus("X", "ThrottlingException", "", 400)));
  EXPECT_TRUE(IsRetryable(SqsErrorToStatus("X", "ServiceUnavailable", "", 503)));
}

TEST(SqsWireTest, QueueDoesNotExistBothProtocols) {
  // JSON protocol as AWS and moto send it.
  Status json = ParseGetQueueUrlResponse(
                    SqsProtocol::kJson,
                    Reply(400,
                          R"({"__type": "com.amazonaws.sqs#QueueDoesNotExist", "message": "The specified queue does not exist."})",
                          {{"x-amzn-query-error", "AWS.SimpleQueueService.NonExistentQueue;Sender"}}))
                    .status();
  EXPECT_EQ(json.code(), StatusCode::kNotFound);
  EXPECT_EQ(json.error_name(), "QueueDoesNotExist");
  EXPECT_THAT(json.message(), HasSubstr("The specified queue does not exist."));
  // Only the header (the body is not JSON).
  Status header_only = ParseGetQueueUrlResponse(
                           SqsProtocol::kJson,
                           Reply(400, "oops", {{"x-amzn-query-error", "AWS.SimpleQueueService.NonExistentQueue;Sender"}}))
                           .status();
  EXPECT_EQ(header_only.code(), StatusCode::kNotFound);
  EXPECT_EQ(header_only.error_name(), "QueueDoesNotExist");
  // Query protocol.
  Status xml = ParseGetQueueUrlResponse(
                   SqsProtocol::kQuery,
                   Reply(400, R"(<ErrorResponse xmlns="http://queue.amazonaws.com/doc/2012-11-05/"><Error><Type>Sender</Type>)"
                              R"(<Code>AWS.SimpleQueueService.NonExistentQueue</Code>)"
                              R"(<Message>The specified queue does not exist for this wsdl version.</Message>)"
                              R"(<Detail/></Error><RequestId>r</RequestId></ErrorResponse>)"))
                   .status();
  EXPECT_EQ(xml.code(), StatusCode::kNotFound);
  EXPECT_EQ(xml.error_name(), "QueueDoesNotExist");
  EXPECT_THAT(xml.message(), HasSubstr("The specified queue does not exist for this wsdl version."));
}

TEST(SqsWireTest, TooManyEntriesKeepsTheShortName) {
  Status json = ParseSendMessageBatchResponse(
                    SqsProtocol::kJson,
                    Reply(400, R"({"__type": "com.amazonaws.sqs#TooManyEntriesInBatchRequest", "message": "Maximum number of entries per request are 10. You have sent 11."})",
                          {{"x-amzn-query-error", "AWS.SimpleQueueService.TooManyEntriesInBatchRequest;Sender"}}),
                    {})
                    .status();
  EXPECT_EQ(json.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(json.error_name(), "TooManyEntriesInBatchRequest");
  EXPECT_THAT(json.message(), HasSubstr("You have sent 11"));
  Status xml = ParseSendMessageBatchResponse(
                   SqsProtocol::kQuery,
                   Reply(400, "<ErrorResponse><Error><Type>Sender</Type>"
                              "<Code>AWS.SimpleQueueService.TooManyEntriesInBatchRequest</Code>"
                              "<Message>Maximum number of entries per request are 10.</Message></Error></ErrorResponse>"),
                   {})
                   .status();
  EXPECT_EQ(xml.error_name(), "TooManyEntriesInBatchRequest");
}

// ---------------------------------------------------------------------------------------------
// Malformed input: every case gives a clear error, never a crash.

struct MalformedCase {
  const char* name;
  SqsProtocol protocol;
  int status;
  std::string body;
  StatusCode expected;
  const char* message_part;
  std::vector<std::pair<std::string, std::string>> headers = {};
};

constexpr char kHtml502[] =
    "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1>"
    "</center><hr><center>nginx</center></body></html>";

std::vector<MalformedCase> MalformedCases() {
  using P = SqsProtocol;
  const std::string good = kJsonReceive;
  const std::string message_prefix = R"({"Messages": [{"MessageId": "m", "ReceiptHandle": "r", )";
  return {
      {"json empty body", P::kJson, 200, "", StatusCode::kDataLoss, "empty"},
      {"json truncated", P::kJson, 200, good.substr(0, good.size() / 2), StatusCode::kDataLoss, "not JSON"},
      {"json not json", P::kJson, 200, "hello", StatusCode::kDataLoss, "not JSON"},
      {"json html 502", P::kJson, 502, kHtml502, StatusCode::kUnavailable, "502 Bad Gateway"},
      {"json html 200", P::kJson, 200, kHtml502, StatusCode::kUnavailable, "HTML"},
      {"json html 403", P::kJson, 403, "<html><body>Forbidden</body></html>", StatusCode::kPermissionDenied, "HTML"},
      {"json plain 503", P::kJson, 503, "Service Unavailable", StatusCode::kUnavailable, "HTTP 503"},
      {"json empty 500", P::kJson, 500, "", StatusCode::kUnavailable, "HTTP 500"},
      {"json 429", P::kJson, 429, "slow down", StatusCode::kResourceExhausted, "HTTP 429"},
      {"json empty 400", P::kJson, 400, "", StatusCode::kInvalidArgument, "HTTP 400"},
      {"json array", P::kJson, 200, "[1, 2]", StatusCode::kDataLoss, "array"},
      {"json null", P::kJson, 200, "null", StatusCode::kDataLoss, "not an object"},
      {"json Messages number", P::kJson, 200, R"({"Messages": 5})", StatusCode::kDataLoss, "Messages is number"},
      {"json Messages object", P::kJson, 200, R"({"Messages": {}})", StatusCode::kDataLoss, "not an array"},
      {"json message number", P::kJson, 200, R"({"Messages": [5]})", StatusCode::kDataLoss, "not an object"},
      {"json no MessageId", P::kJson, 200, R"({"Messages": [{"ReceiptHandle": "r", "Body": "b"}]})",
       StatusCode::kDataLoss, "MessageId"},
      {"json no ReceiptHandle", P::kJson, 200, R"({"Messages": [{"MessageId": "m", "Body": "b"}]})",
       StatusCode::kDataLoss, "ReceiptHandle"},
      {"json no Body", P::kJson, 200, R"({"Messages": [{"MessageId": "m", "ReceiptHandle": "r"}]})",
       StatusCode::kDataLoss, "Body"},
      {"json Body number", P::kJson, 200, message_prefix + R"("Body": 5}]})", StatusCode::kDataLoss, "Body is number"},
      {"json Attributes array", P::kJson, 200, message_prefix + R"("Body": "b", "Attributes": []}]})",
       StatusCode::kDataLoss, "Attributes"},
      {"json Attribute value number", P::kJson, 200,
       message_prefix + R"("Body": "b", "Attributes": {"ApproximateReceiveCount": 2}}]})", StatusCode::kDataLoss,
       "ApproximateReceiveCount"},
      {"json bad receive count", P::kJson, 200,
       message_prefix + R"("Body": "b", "Attributes": {"ApproximateReceiveCount": "two"}}]})", StatusCode::kDataLoss,
       "ApproximateReceiveCount"},
      {"json bad timestamp", P::kJson, 200,
       message_prefix + R"("Body": "b", "Attributes": {"SentTimestamp": "-12"}}]})", StatusCode::kDataLoss,
       "SentTimestamp"},
      {"json huge timestamp", P::kJson, 200,
       message_prefix + R"("Body": "b", "Attributes": {"SentTimestamp": "99999999999999999999999"}}]})",
       StatusCode::kDataLoss, "SentTimestamp"},
      {"json bad base64", P::kJson, 200,
       message_prefix + R"("Body": "b", "MessageAttributes": {"x": {"DataType": "Binary", "BinaryValue": "!!!!"}}}]})",
       StatusCode::kDataLoss, "base64"},
      {"json base64 bad length", P::kJson, 200,
       message_prefix + R"("Body": "b", "MessageAttributes": {"x": {"DataType": "Binary", "BinaryValue": "AAE"}}}]})",
       StatusCode::kDataLoss, "base64"},
      {"json attribute without type", P::kJson, 200,
       message_prefix + R"("Body": "b", "MessageAttributes": {"x": {"StringValue": "v"}}}]})", StatusCode::kDataLoss,
       "DataType"},
      {"json attribute without value", P::kJson, 200,
       message_prefix + R"("Body": "b", "MessageAttributes": {"x": {"DataType": "String"}}}]})",
       StatusCode::kDataLoss, "StringValue"},
      {"json attribute not object", P::kJson, 200,
       message_prefix + R"("Body": "b", "MessageAttributes": {"x": "v"}}]})", StatusCode::kDataLoss, "not an object"},
      {"json body md5 mismatch", P::kJson, 200,
       message_prefix + R"("Body": "b", "MD5OfBody": "49f68a5c8493ec2c0bf489821c21fc3b"}]})", StatusCode::kDataLoss,
       "MD5OfBody"},
      {"json attributes md5 mismatch", P::kJson, 200,
       message_prefix + R"("Body": "b", "MD5OfMessageAttributes": "fa20e2def088daf7b14bc51e836c5547", )"
                        R"("MessageAttributes": {"a": {"DataType": "String", "StringValue": "other"}}}]})",
       StatusCode::kDataLoss, "MD5OfMessageAttributes"},
      {"json attributes md5 without attributes", P::kJson, 200,
       message_prefix + R"("Body": "b", "MD5OfMessageAttributes": "fa20e2def088daf7b14bc51e836c5547"}]})",
       StatusCode::kDataLoss, "MD5OfMessageAttributes"},
      {"json 200 with __type", P::kJson, 200,
       R"({"__type": "com.amazonaws.sqs#QueueDoesNotExist", "message": "The specified queue does not exist."})",
       StatusCode::kNotFound, "The specified queue does not exist."},
      {"json 200 with throttling __type", P::kJson, 200, R"({"__type": "ThrottlingException", "Message": "Rate exceeded"})",
       StatusCode::kResourceExhausted, "Rate exceeded"},
      {"json eleven messages", P::kJson, 200,
       [] {
         std::string body = R"({"Messages": [)";
         for (int i = 0; i < 11; ++i) {
           body += std::string(i ? "," : "") + R"({"MessageId": "m", "ReceiptHandle": "r", "Body": "b"})";
         }
         return body + "]}";
       }(),
       StatusCode::kDataLoss, "11 messages"},

      {"json deep nesting", P::kJson, 200, std::string(100000, '[') + std::string(100000, ']'), StatusCode::kDataLoss,
       "array"},
      {"json unclosed deep nesting", P::kJson, 200, std::string(100000, '['), StatusCode::kDataLoss, "not JSON"},

      {"xml empty body", P::kQuery, 200, "", StatusCode::kDataLoss, "empty"},
      {"xml truncated", P::kQuery, 200, std::string(kXmlReceive).substr(0, 200), StatusCode::kDataLoss, "not XML"},
      {"xml json body", P::kQuery, 200, "{}", StatusCode::kDataLoss, "not XML"},
      {"xml html 502", P::kQuery, 502, kHtml502, StatusCode::kUnavailable, "502 Bad Gateway"},
      {"xml html 200", P::kQuery, 200, "<html><head><title>Portal</title></head><body/></html>", StatusCode::kUnavailable,
       "Portal"},
      {"xml html content type", P::kQuery, 200, "<p>hi</p>", StatusCode::kUnavailable, "HTML",
       {{"Content-Type", "text/html; charset=utf-8"}}},
      {"xml wrong root", P::kQuery, 200, "<SendMessageResponse/>", StatusCode::kDataLoss, "root element"},
      {"xml 503 empty", P::kQuery, 503, "", StatusCode::kUnavailable, "HTTP 503"},
      {"xml no ReceiptHandle", P::kQuery, 200,
       "<ReceiveMessageResponse><ReceiveMessageResult><Message><MessageId>m</MessageId><Body>b</Body></Message>"
       "</ReceiveMessageResult></ReceiveMessageResponse>",
       StatusCode::kDataLoss, "ReceiptHandle"},
      {"xml attribute without value", P::kQuery, 200,
       "<ReceiveMessageResponse><ReceiveMessageResult><Message><MessageId>m</MessageId><ReceiptHandle>r</ReceiptHandle>"
       "<Body>b</Body><Attribute><Name>SentTimestamp</Name></Attribute></Message></ReceiveMessageResult>"
       "</ReceiveMessageResponse>",
       StatusCode::kDataLoss, "Attribute"},
      {"xml bad base64", P::kQuery, 200,
       "<ReceiveMessageResponse><ReceiveMessageResult><Message><MessageId>m</MessageId><ReceiptHandle>r</ReceiptHandle>"
       "<Body>b</Body><MessageAttribute><Name>x</Name><Value><BinaryValue>A=AA</BinaryValue><DataType>Binary</DataType>"
       "</Value></MessageAttribute></Message></ReceiveMessageResult></ReceiveMessageResponse>",
       StatusCode::kDataLoss, "base64"},
      {"xml md5 mismatch", P::kQuery, 200,
       "<ReceiveMessageResponse><ReceiveMessageResult><Message><MessageId>m</MessageId><ReceiptHandle>r</ReceiptHandle>"
       "<MD5OfBody>00000000000000000000000000000000</MD5OfBody><Body>b</Body></Message></ReceiveMessageResult>"
       "</ReceiveMessageResponse>",
       StatusCode::kDataLoss, "MD5OfBody"},
      {"xml 200 error response", P::kQuery, 200,
       "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>Access to the resource is denied."
       "</Message></Error></ErrorResponse>",
       StatusCode::kPermissionDenied, "Access to the resource is denied."},
      {"xml receiver fault", P::kQuery, 200,
       "<ErrorResponse><Error><Type>Receiver</Type><Code>Weird</Code><Message>oops</Message></Error></ErrorResponse>",
       StatusCode::kUnavailable, "oops"},
      {"xml deep nesting", P::kQuery, 200,
       [] {
         std::string body;
         for (int i = 0; i < 5000; ++i) body += "<a>";
         return body;
       }(),
       StatusCode::kDataLoss, "not XML"},
  };
}

TEST(SqsWireTest, MalformedReceiveResponses) {
  for (const MalformedCase& c : MalformedCases()) {
    HttpResponse response = Reply(c.status, c.body, c.headers);
    StatusOr<std::vector<ReceivedMessage>> got = ParseReceiveMessageResponse(c.protocol, response);
    ASSERT_FALSE(got.ok()) << c.name;
    EXPECT_EQ(got.status().code(), c.expected) << c.name << ": " << got.status().ToString();
    EXPECT_THAT(got.status().message(), HasSubstr(c.message_part)) << c.name;
    EXPECT_THAT(got.status().message(), HasSubstr("SQS ReceiveMessage")) << c.name;
  }
}

// Found by fuzz/ (sqs_json, sqs_xml): a timestamp below the old bound of 2^53 ms but past what
// system_clock's nanoseconds hold (2262-04-11) overflowed int64 in the conversion (UB) instead of
// being rejected.
TEST(SqsWireTest, TimestampsPastTheClockRangeAreDataLoss) {
  const std::string prefix = R"({"Messages": [{"MessageId": "m", "ReceiptHandle": "r", "Body": "b", "Attributes": )";
  for (const char* ms : {"9223372036855", "17953403620817", "9007199254740992"}) {
    StatusOr<std::vector<ReceivedMessage>> got = ParseReceiveMessageResponse(
        SqsProtocol::kJson, Reply(200, prefix + R"({"SentTimestamp": ")" + ms + R"("}}]})"));
    EXPECT_EQ(got.status().code(), StatusCode::kDataLoss) << ms;
    EXPECT_THAT(got.status().message(), HasSubstr("SentTimestamp")) << ms;
    got = ParseReceiveMessageResponse(
        SqsProtocol::kQuery,
        Reply(200, std::string("<ReceiveMessageResponse><ReceiveMessageResult><Message><MessageId>m</MessageId>"
                               "<ReceiptHandle>r</ReceiptHandle><Body>b</Body><Attribute>"
                               "<Name>ApproximateFirstReceiveTimestamp</Name><Value>") +
                       ms + "</Value></Attribute></Message></ReceiveMessageResult></ReceiveMessageResponse>"));
    EXPECT_EQ(got.status().code(), StatusCode::kDataLoss) << ms;
    EXPECT_THAT(got.status().message(), HasSubstr("ApproximateFirstReceiveTimestamp")) << ms;
  }
  // The last millisecond system_clock holds is still a time.
  StatusOr<std::vector<ReceivedMessage>> got = ParseReceiveMessageResponse(
      SqsProtocol::kJson, Reply(200, prefix + R"({"SentTimestamp": "9223372036854"}}]})"));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_THAT(*got, SizeIs(1));
  EXPECT_EQ(got->at(0).sent_timestamp, Millis(9223372036854));
}

TEST(SqsWireTest, MalformedBatchResponses) {
  std::vector<SendBatchEntry> sent = BatchOf({{"a", "x"}});
  const std::pair<std::string, StatusCode> json_cases[] = {
      {R"({"Successful": 1})", StatusCode::kDataLoss},
      {R"({"Failed": [{"Id": "a", "SenderFault": 3, "Code": "X"}]})", StatusCode::kDataLoss},
      {R"({"Successful": [{"MessageId": "m"}]})", StatusCode::kDataLoss},
      {R"({"Successful": [{"Id": 7, "MessageId": "m"}]})", StatusCode::kDataLoss},
      {R"({"Failed": [{"Code": "X"}]})", StatusCode::kDataLoss},
      {R"({"Successful": [[]]})", StatusCode::kDataLoss},
  };
  for (const auto& [body, code] : json_cases) {
    StatusOr<BatchResult<SendResult>> got = ParseSendMessageBatchResponse(SqsProtocol::kJson, Reply(200, body), sent);
    EXPECT_EQ(got.status().code(), code) << body << ": " << got.status().ToString();
  }
  StatusOr<BatchResult<Empty>> xml = ParseEmptyBatchResponse(
      SqsProtocol::kQuery, "DeleteMessageBatch",
      Reply(200, "<DeleteMessageBatchResponse><DeleteMessageBatchResult><BatchResultErrorEntry><Id>a</Id>"
                 "<SenderFault>maybe</SenderFault></BatchResultErrorEntry></DeleteMessageBatchResult>"
                 "</DeleteMessageBatchResponse>"),
      {"a"});
  EXPECT_EQ(xml.status().code(), StatusCode::kDataLoss);
  // A successful entry without MessageId: that entry's result cannot be trusted.
  StatusOr<BatchResult<SendResult>> no_id =
      ParseSendMessageBatchResponse(SqsProtocol::kJson, Reply(200, R"({"Successful": [{"Id": "a"}]})"), sent);
  ASSERT_TRUE(no_id.ok()) << no_id.status().ToString();
  ASSERT_THAT(no_id->failed, SizeIs(1));
  EXPECT_EQ(no_id->failed[0].status.code(), StatusCode::kDataLoss);
}

// Every prefix of a valid response, and random byte flips, give an error or a value: never a crash
// (run under ASan/UBSan too).
TEST(SqsWireTest, TruncationsAndCorruptionsNeverCrash) {
  OutgoingMessage sent;
  sent.body = "hi";
  std::mt19937 rng(12345);
  for (const auto& [protocol, full] : {std::pair<SqsProtocol, std::string>{SqsProtocol::kJson, kJsonReceive},
                                       std::pair<SqsProtocol, std::string>{SqsProtocol::kQuery, kXmlReceive}}) {
    ASSERT_TRUE(ParseReceiveMessageResponse(protocol, Reply(200, full)).ok());
    for (std::size_t n = 0; n < full.size(); ++n) {
      HttpResponse r = Reply(200, full.substr(0, n));
      StatusOr<std::vector<ReceivedMessage>> got = ParseReceiveMessageResponse(protocol, r);
      EXPECT_FALSE(got.ok()) << "prefix of " << n << " bytes parsed";
      (void)ParseSendMessageResponse(protocol, r, sent);
      (void)ParseEmptyBatchResponse(protocol, "DeleteMessageBatch", r, {"a"});
      (void)ParseGetQueueAttributesResponse(protocol, r);
      (void)ParseGetQueueUrlResponse(protocol, r);
    }
    for (int i = 0; i < 2000; ++i) {
      std::string corrupt = full;
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int k = 0; k < flips; ++k) corrupt[rng() % corrupt.size()] = static_cast<char>(rng() % 256);
      HttpResponse r = Reply(200, corrupt);
      StatusOr<std::vector<ReceivedMessage>> got = ParseReceiveMessageResponse(protocol, r);
      if (got.ok()) {
        EXPECT_LE(got->size(), 1u);
      } else {
        EXPECT_FALSE(got.status().message().empty());
      }
    }
  }
}

}  // namespace
}  // namespace taskpipe
