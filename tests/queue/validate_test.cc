#include "queue/validate.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace taskpipe {
namespace {

using namespace std::chrono_literals;

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

// (Designated initializers would trip -Wmissing-field-initializers on ReceiveOptions.)
ReceiveOptions Options(int max_messages, std::chrono::seconds wait = 0s,
                       std::optional<std::chrono::seconds> visibility = std::nullopt) {
  ReceiveOptions options;
  options.max_messages = max_messages;
  options.wait = wait;
  options.visibility_timeout = visibility;
  return options;
}

std::string ErrorName(const Status& status) { return status.ok() ? "OK" : status.error_name(); }

TEST(ValidateTest, Md5OfBody) {
  EXPECT_EQ(Md5OfBody(""), "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(Md5OfBody("hello"), "5d41402abc4b2a76b9719d911017c592");
  EXPECT_EQ(Md5OfBody("The quick brown fox jumps over the lazy dog"), "9e107d9d372bb6826bd81d3542a419d6");
}

// Vectors published with the npm package aws-md5-of-message-attributes
// (https://npmjs.com/package/aws-md5-of-message-attributes), which implements the algorithm of
// https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-message-metadata.html;
// the combined one was also checked against moto_server's MD5OfMessageAttributes.
TEST(ValidateTest, Md5OfMessageAttributesMatchesKnownVectors) {
  const MessageAttribute text = StringAttribute("String", "attribValue 1");
  const MessageAttribute number =
      StringAttribute("Number.float", "4563442423554324324264524243.32543234");
  const MessageAttribute binary = BinaryAttribute("Binary", "Hello binary world!");
  EXPECT_EQ(Md5OfMessageAttributes({{"attribName1", text}}), "19e27d4e946b072f3f58da80d94fd778");
  EXPECT_EQ(Md5OfMessageAttributes({{"customNumberTypeAttrib", number}}),
            "9fe1b90bbd9965bdf77bac517c7d2495");
  EXPECT_EQ(Md5OfMessageAttributes({{"binaryAttribute", binary}}), "31a92b15d92f8db860eda32aceb656c3");
  EXPECT_EQ(Md5OfMessageAttributes(
                {{"attribName1", text}, {"customNumberTypeAttrib", number}, {"binaryAttribute", binary}}),
            "c932db14a896c663f83c260297d594ff");
  EXPECT_EQ(Md5OfMessageAttributes({}), "");
}

TEST(ValidateTest, MessageTextCharacters) {
  struct Case {
    std::string text;
    bool valid;
  };
  const std::vector<Case> cases = {
      {"", true},
      {"plain ascii, long enough for the eight-byte fast path ~~~", true},
      {"\t\n\r", true},
      {"\x7f", true},
      {std::string("a\0b", 3), false},
      {"\x08", false},
      {"\x1f", false},
      {"0123456789abcdef\x1f", false},          // control char after the fast path
      {"01234567\x0b" "89abcdef", false},      // inside an eight-byte word
      {"\xc3\xa9", true},                       // U+00E9
      {"\xed\x9f\xbf", true},                   // U+D7FF
      {"\xed\xa0\x80", false},                  // U+D800, a surrogate
      {"\xee\x80\x80", true},                   // U+E000
      {"\xef\xbf\xbd", true},                   // U+FFFD
      {"\xef\xbf\xbe", false},                  // U+FFFE
      {"\xef\xbf\xbf", false},                  // U+FFFF
      {"\xf0\x90\x80\x80", true},               // U+10000
      {"\xf4\x8f\xbf\xbf", true},               // U+10FFFF
      {"\xf4\x90\x80\x80", false},              // beyond U+10FFFF
      {"\xc0\xaf", false},                      // overlong '/'
      {"\xe0\x80\xaf", false},                  // overlong '/'
      {"\xc3", false},                          // truncated
      {"\xe2\x98", false},                      // truncated
      {"\x80", false},                          // lone continuation byte
      {"\xff", false},
      {"snowman \xe2\x98\x83 and emoji \xf0\x9f\x98\x80", true},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(IsValidMessageText(c.text), c.valid) << "text of " << c.text.size() << " bytes: " << c.text;
  }
}

TEST(ValidateTest, BatchEntryIds) {
  EXPECT_EQ(ErrorName(ValidateBatchEntryIds({"a", "B-2", "c_3", std::string(80, 'x')})), "OK");
  EXPECT_EQ(ErrorName(ValidateBatchEntryIds({})), "EmptyBatchRequest");
  EXPECT_EQ(ErrorName(ValidateBatchEntryIds(std::vector<std::string>(11, "a"))),
            "TooManyEntriesInBatchRequest");
  EXPECT_EQ(ErrorName(ValidateBatchEntryIds({""})), "InvalidBatchEntryId");
  EXPECT_EQ(ErrorName(ValidateBatchEntryIds({std::string(81, 'x')})), "InvalidBatchEntryId");
  EXPECT_EQ(ErrorName(ValidateBatchEntryIds({"a.b"})), "InvalidBatchEntryId");
  EXPECT_EQ(ErrorName(ValidateBatchEntryIds({"a", "b", "a"})), "BatchEntryIdsNotDistinct");
  Status status = ValidateBatchEntryIds({"x", "x"});
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("'x'"), std::string::npos) << status.message();
}

TEST(ValidateTest, ReceiveOptionsAndVisibility) {
  EXPECT_EQ(ErrorName(ValidateReceiveOptions(Options(1))), "OK");
  EXPECT_EQ(ErrorName(ValidateReceiveOptions(Options(10, 20s, 12h))),
            "OK");
  EXPECT_EQ(ErrorName(ValidateReceiveOptions(Options(0))), "InvalidParameterValue");
  EXPECT_EQ(ErrorName(ValidateReceiveOptions(Options(11))), "InvalidParameterValue");
  EXPECT_EQ(ErrorName(ValidateReceiveOptions(Options(1, 21s))), "InvalidParameterValue");
  EXPECT_EQ(ErrorName(ValidateReceiveOptions(Options(1, -1s))), "InvalidParameterValue");
  EXPECT_EQ(ErrorName(ValidateReceiveOptions(Options(1, 0s, 12h + 1s))), "InvalidParameterValue");
  EXPECT_EQ(ErrorName(ValidateVisibilityTimeout(0s)), "OK");
  EXPECT_EQ(ErrorName(ValidateVisibilityTimeout(43200s)), "OK");
  EXPECT_EQ(ErrorName(ValidateVisibilityTimeout(43201s)), "InvalidParameterValue");
  EXPECT_EQ(ErrorName(ValidateVisibilityTimeout(-1s)), "InvalidParameterValue");
}

OutgoingMessage WithAttribute(std::string name, MessageAttribute attribute) {
  OutgoingMessage message;
  message.body = "body";
  message.attributes[std::move(name)] = std::move(attribute);
  return message;
}

TEST(ValidateTest, OutgoingMessageBodyAndDelay) {
  OutgoingMessage message;
  message.body = "x";
  EXPECT_EQ(ErrorName(ValidateOutgoingMessage(message)), "OK");
  message.delay = 900s;
  EXPECT_EQ(ErrorName(ValidateOutgoingMessage(message)), "OK");
  message.delay = 901s;
  EXPECT_EQ(ErrorName(ValidateOutgoingMessage(message)), "InvalidParameterValue");
  message.delay = -1s;
  EXPECT_EQ(ErrorName(ValidateOutgoingMessage(message)), "InvalidParameterValue");
  message.delay = 0s;
  message.body = "";
  EXPECT_EQ(ErrorName(ValidateOutgoingMessage(message)), "InvalidParameterValue");
  message.body = std::string(kMaxMessageBytes, 'a');
  EXPECT_EQ(ErrorName(ValidateOutgoingMessage(message)), "OK");
  message.body.push_back('a');
  EXPECT_EQ(ErrorName(ValidateOutgoingMessage(message)), "InvalidParameterValue");
  message.body = "\xc3\x28";
  EXPECT_EQ(ErrorName(ValidateOutgoingMessage(message)), "InvalidMessageContents");
}

TEST(ValidateTest, AttributeNames) {
  const MessageAttribute value = StringAttribute("String", "v");
  for (const std::string& name : {std::string("a"), std::string("a.b-c_D9"), std::string(256, 'n'),
                                  std::string("awsish"), std::string("AWS")}) {
    EXPECT_EQ(ErrorName(ValidateOutgoingMessage(WithAttribute(name, value))), "OK") << name;
  }
  for (const std::string& name :
       {std::string(""), std::string(257, 'n'), std::string("AWS.x"), std::string("aws.x"),
        std::string("Amazon.x"), std::string("aMaZoN.x"), std::string(".a"), std::string("a."),
        std::string("a..b"), std::string("a b"), std::string("a/b"), std::string("\xc3\xa9")}) {
    EXPECT_EQ(ErrorName(ValidateOutgoingMessage(WithAttribute(name, value))), "InvalidParameterValue")
        << name;
  }
  OutgoingMessage eleven;
  eleven.body = "b";
  for (int i = 0; i < 11; ++i) eleven.attributes["a" + std::to_string(i)] = value;
  EXPECT_EQ(ErrorName(ValidateOutgoingMessage(eleven)), "InvalidParameterValue");
  eleven.attributes.erase("a0");
  EXPECT_EQ(ErrorName(ValidateOutgoingMessage(eleven)), "OK");
}

TEST(ValidateTest, AttributeTypesAndValues) {
  struct Case {
    MessageAttribute attribute;
    bool valid;
  };
  const std::vector<Case> cases = {
      {StringAttribute("String", "x"), true},
      {StringAttribute("String.custom", "x"), true},
      {StringAttribute("String", ""), false},
      {StringAttribute("String", "bell\x07"), false},
      {StringAttribute("String.", "x"), false},
      {StringAttribute("string", "x"), false},
      {StringAttribute("Strings", "x"), false},
      {StringAttribute("", "x"), false},
      {StringAttribute("String." + std::string(250, 'x'), "x"), false},
      {StringAttribute("Number", "0"), true},
      {StringAttribute("Number", "-1.5e10"), true},
      {StringAttribute("Number.float", ".5"), true},
      {StringAttribute("Number", std::string(38, '9')), true},
      {StringAttribute("Number", std::string(39, '9')), false},
      {StringAttribute("Number", "1" + std::string(60, '0')), true},
      {StringAttribute("Number", "1e126"), true},
      {StringAttribute("Number", "1e127"), false},
      {StringAttribute("Number", "1e-128"), true},
      {StringAttribute("Number", "0.01e-127"), false},
      {StringAttribute("Number", "abc"), false},
      {StringAttribute("Number", "1.2.3"), false},
      {StringAttribute("Number", "1e"), false},
      {StringAttribute("Number", ""), false},
      {BinaryAttribute("Binary", std::string("\0\xff", 2)), true},
      {BinaryAttribute("Binary.png", "x"), true},
      {StringAttribute("Binary", "only a string"), false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(ErrorName(ValidateOutgoingMessage(WithAttribute("attr", c.attribute))),
              c.valid ? "OK" : "InvalidParameterValue")
        << c.attribute.data_type << " = '" << c.attribute.string_value << "'";
  }
}

TEST(ValidateTest, MessageSizeCountsBodyAndAttributes) {
  OutgoingMessage message;
  message.body = "12345";
  EXPECT_EQ(MessageSize(message), 5u);
  message.attributes["ab"] = StringAttribute("String", "xyz");       // 2 + 6 + 3
  message.attributes["cd"] = BinaryAttribute("Binary", "1234");      // 2 + 6 + 4
  message.attributes["ef"] = StringAttribute("Number.i", "7");       // 2 + 8 + 1
  EXPECT_EQ(MessageSize(message), 5u + 11u + 12u + 11u);
}

TEST(ValidateTest, BinaryDataTypes) {
  EXPECT_TRUE(IsBinaryDataType("Binary"));
  EXPECT_TRUE(IsBinaryDataType("Binary.gif"));
  EXPECT_FALSE(IsBinaryDataType("BinaryX"));
  EXPECT_FALSE(IsBinaryDataType("String"));
  EXPECT_FALSE(IsBinaryDataType("Number.Binary"));
}

}  // namespace
}  // namespace taskpipe
