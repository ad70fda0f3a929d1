#include "producer/envelope.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/time_format.h"
#include "queue/validate.h"

namespace taskpipe {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::system_clock;
using ::testing::HasSubstr;
using ::testing::StartsWith;

system_clock::time_point At(std::string_view text) { return *ParseRfc3339(text); }

TEST(EnvelopeTest, EncodesTheDesignShape) {
  const Envelope envelope{.job = "daily-report",
                          .task = json{{"report", "sales"}},
                          .scheduled_at = At("2026-03-08T04:00:00Z"),
                          .fired_at = At("2026-03-08T04:00:00.012Z")};
  EXPECT_EQ(EncodeEnvelope(envelope),
            R"({"job":"daily-report","task":{"report":"sales"},"scheduled_at":"2026-03-08T04:00:00Z",)"
            R"("fired_at":"2026-03-08T04:00:00.012Z"})");
}

TEST(EnvelopeTest, RoundTrips) {
  const Envelope cases[] = {
      {"j", json("Hello from taskpipe #1"), At("2026-01-01T00:00:00Z"), At("2026-01-01T00:00:00Z")},
      {"a.b_c-9", json{{"report", "sales"}, {"day", "yesterday"}, {"n", 3}, {"nested", {{"x", {1, 2}}}}},
       At("2030-12-31T23:59:59Z"), At("2031-01-01T00:00:01.999Z")},
      {"unicode", json("caf\u00e9 \u6e2c\u8a66 \U0001F600 \"quotes\" \\ \n\t"),
       At("1999-06-01T12:00:00.500Z"), At("1999-06-01T12:00:00.501Z")},
      {"empty", json::object(), At("2026-03-08T07:00:00Z"), At("2026-03-08T07:00:05Z")},
      {"s", json(""), At("2026-03-08T07:00:00Z"), At("2026-03-08T07:00:00Z")},
  };
  for (const Envelope& envelope : cases) {
    const std::string body = EncodeEnvelope(envelope);
    EXPECT_TRUE(IsValidMessageText(body)) << body;
    StatusOr<Envelope> decoded = DecodeEnvelope(body);
    ASSERT_TRUE(decoded.ok()) << decoded.status().ToString() << " for " << body;
    EXPECT_EQ(*decoded, envelope) << body;
  }
}

TEST(EnvelopeTest, TimesKeepMilliseconds) {
  const Envelope envelope{"j", json("t"), At("2026-01-01T00:00:00Z") + milliseconds(7),
                          At("2026-01-01T00:00:00Z") + seconds(1) + milliseconds(999)};
  const std::string body = EncodeEnvelope(envelope);
  EXPECT_THAT(body, HasSubstr(R"("scheduled_at":"2026-01-01T00:00:00.007Z")"));
  EXPECT_EQ(DecodeEnvelope(body)->fired_at, envelope.fired_at);
}

TEST(EnvelopeTest, CharactersSqsRefusesAreEscaped) {
  // U+FFFE is valid JSON text but not a character SQS accepts in a body.
  const Envelope envelope{"j",
                          json("a\xEF\xBF\xBE"
                               "b \u00e9"),
                          At("2026-01-01T00:00:00Z"), At("2026-01-01T00:00:00Z")};
  const std::string body = EncodeEnvelope(envelope);
  EXPECT_TRUE(IsValidMessageText(body)) << body;
  EXPECT_THAT(body, HasSubstr(R"(\ufffe)"));
  EXPECT_EQ(*DecodeEnvelope(body), envelope);
}

TEST(EnvelopeTest, InvalidUtf8InATaskDoesNotThrow) {
  const Envelope envelope{"j", json("bad \xC3 byte"), At("2026-01-01T00:00:00Z"), At("2026-01-01T00:00:00Z")};
  std::string body;
  EXPECT_NO_THROW(body = EncodeEnvelope(envelope));
  EXPECT_TRUE(IsValidMessageText(body));
  EXPECT_TRUE(DecodeEnvelope(body).ok());
}

TEST(EnvelopeTest, KeyOrderAndExtraKeysDoNotMatter) {
  StatusOr<Envelope> decoded = DecodeEnvelope(
      R"({"fired_at":"2026-01-01T00:00:01Z","v":2,"task":"t","scheduled_at":"2026-01-01T08:00:00+08:00","job":"j"})");
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded->job, "j");
  EXPECT_EQ(decoded->scheduled_at, At("2026-01-01T00:00:00Z"));
}

TEST(EnvelopeTest, MalformedBodiesAreClearErrors) {
  struct Case {
    std::string body;
    std::string fault;
  };
  const std::string ok_times = R"("scheduled_at":"2026-01-01T00:00:00Z","fired_at":"2026-01-01T00:00:00Z")";
  const Case cases[] = {
      {"", "the body is not valid JSON (0 bytes)"},
      {"Hello from taskpipe", "the body is not valid JSON"},
      {"{\"job\":", "the body is not valid JSON"},
      {R"({"job":"j",})", "the body is not valid JSON"},
      {"{\"job\":\"\xC3\"}", "the body is not valid JSON"},
      {"[]", "expected a JSON object, got an array"},
      {"42", "expected a JSON object, got 42"},
      {R"("text")", "expected a JSON object, got \"text\""},
      {"null", "expected a JSON object, got null"},
      {"{}", "\"job\" is missing"},
      {R"({"task":"t",)" + ok_times + "}", "\"job\" is missing"},
      {R"({"job":7,"task":"t",)" + ok_times + "}", "\"job\" must be a string, got 7"},
      {R"({"job":null,"task":"t",)" + ok_times + "}", "\"job\" must be a string, got null"},
      {R"({"job":"","task":"t",)" + ok_times + "}", "\"job\" is empty"},
      {R"({"job":"j",)" + ok_times + "}", "\"task\" is missing"},
      {R"({"job":"j","task":[1],)" + ok_times + "}", "\"task\" must be a string or an object, got an array"},
      {R"({"job":"j","task":null,)" + ok_times + "}", "\"task\" must be a string or an object, got null"},
      {R"({"job":"j","task":3.5,)" + ok_times + "}", "\"task\" must be a string or an object, got 3.5"},
      {R"({"job":"j","task":"t","fired_at":"2026-01-01T00:00:00Z"})", "\"scheduled_at\" is missing"},
      {R"({"job":"j","task":"t","scheduled_at":"2026-01-01T00:00:00Z"})", "\"fired_at\" is missing"},
      {R"({"job":"j","task":"t","scheduled_at":1767225600,"fired_at":"2026-01-01T00:00:00Z"})",
       "\"scheduled_at\" must be an RFC 3339 time string, got 1767225600"},
      {R"({"job":"j","task":"t","scheduled_at":"yesterday","fired_at":"2026-01-01T00:00:00Z"})",
       "\"scheduled_at\": invalid time"},
      {R"({"job":"j","task":"t","scheduled_at":"2026-02-30T00:00:00Z","fired_at":"2026-01-01T00:00:00Z"})",
       "\"scheduled_at\": invalid time \"2026-02-30T00:00:00Z\": day 30 is out of range"},
      {R"({"job":"j","task":"t","scheduled_at":"2026-01-01T00:00:00Z","fired_at":"2026-01-01 00:00"})",
       "\"fired_at\": invalid time"},
      {R"({"job":"j","task":"t","scheduled_at":"2026-01-01T00:00:00Z","fired_at":{}})",
       "\"fired_at\" must be an RFC 3339 time string, got an object"},
      {std::string(100, '[') + std::string(100, ']'), "the body nests more than 64 levels deep"},
      {R"({"job":"j","task":)" + std::string(100000, '[') + std::string(100000, ']') + "}",
       "the body nests more than 64 levels deep"},
  };
  EXPECT_GE(std::size(cases), 15u);
  for (const Case& c : cases) {
    StatusOr<Envelope> decoded = Status(StatusCode::kUnknown, "not decoded");
    EXPECT_NO_THROW(decoded = DecodeEnvelope(c.body));
    ASSERT_FALSE(decoded.ok()) << c.body.substr(0, 200);
    EXPECT_EQ(decoded.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(decoded.status().message(), StartsWith("not a taskpipe envelope: " + c.fault))
        << c.body.substr(0, 200);
  }
}

TEST(EnvelopeTest, BracketsInsideStringsDoNotCountAsNesting) {
  const Envelope envelope{"j", json(std::string(1000, '[') + "\"{" + std::string(1000, '{')),
                          At("2026-01-01T00:00:00Z"), At("2026-01-01T00:00:00Z")};
  StatusOr<Envelope> decoded = DecodeEnvelope(EncodeEnvelope(envelope));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, envelope);
}

// DecodeEnvelope() takes a fast path for bodies of the common shape; for every body it must give
// what the general parser gives: the same envelope or the same error.
TEST(EnvelopeTest, FastPathAgreesWithTheGeneralParser) {
  const std::string t = R"("scheduled_at":"2026-01-01T00:00:00Z","fired_at":"2026-01-01T00:00:00.250Z")";
  std::vector<std::string> bodies = {
      R"({"job":"j","task":"t",)" + t + "}",
      R"({"job":"j","task":{"a":1,"b":[true,null,{"c":"}{]["}]},)" + t + "}",
      " \t\r\n{ \"job\" : \"j\" ,\n \"task\" : { } , " + t + " } \n",
      R"({"fired_at":"2026-01-01T00:00:01Z","scheduled_at":"2026-01-01T08:00:00+08:00","task":"t","job":"j"})",
      R"({"job":"a","job":"b","task":"t",)" + t + "}",                  // duplicate key
      R"({"job":"j\u0041","task":"t",)" + t + "}",                      // escape in the job
      R"({"jo\u0062":"j","task":"t",)" + t + "}",                       // escape in a key
      R"({"job":"j","task":"a\"b\\c\u00e9",)" + t + "}",                // escapes in the task
      "{\"job\":\"caf\xC3\xA9\",\"task\":\"t\"," + t + "}",             // UTF-8 in the job
      "{\"job\":\"j\x01\",\"task\":\"t\"," + t + "}",                   // control character
      "{\"job\":\"j\",\"task\":\"t\xC3\"," + t + "}",                   // invalid UTF-8
      "{\"job\":\"j\",\"task\":{\"a\":\"\xC3\"}," + t + "}",            // invalid UTF-8 inside
      std::string("{\"job\":\"j\0\",\"task\":\"t\",", 24) + t + "}",   // NUL
      R"({"job":"j","task":{"a":},)" + t + "}",
      R"({"job":"j","task":{"a":1,)" + t + "}",
      R"({"job":"j","task":{"a":1}},)" + t + "}",
      R"({"job":"j","task":"t",)" + t + "} x",
      R"({"job":"j","task":"t",)" + t + "}}",
      R"({"job":"j","task":"t",)" + t + ",}",
      R"({"job":"j","task":"t",)" + t,
      R"({"job":"","task":"t",)" + t + "}",
      R"({"job":"j","task":"t","v":2,)" + t + "}",                      // unknown key
      R"({"job":"j","task":7,)" + t + "}",
      R"({"job":"j",)" + t + "}",
      R"({"job":"j","task":"t","scheduled_at":"2026-02-30T00:00:00Z","fired_at":"2026-01-01T00:00:00Z"})",
      R"({"job":"j","task":"t","scheduled_at":"2026-01-01T00:00:00Z","fired_at":"2026-01-01"})",
      R"({"job":"j","task":"t","scheduled_at":"2026-01-01T00:00:00Z","fired_at":7})",
      R"({"job":"j" "task":"t",)" + t + "}",
      R"({"job":"j","task":"t",)" + t + "}" + std::string(3, '\0'),
      "{}",
      "",
  };
  // Nesting at the limit (64 levels, the envelope's own object included) and one past it.
  for (const int levels : {64, 65}) {
    std::string task = "{}";
    for (int i = 2; i < levels; ++i) task = "{\"a\":" + task + "}";
    bodies.push_back(R"({"job":"j","task":)" + task + "," + t + "}");
  }
  for (const std::string& body : bodies) {
    const StatusOr<Envelope> fast = DecodeEnvelope(body);
    const StatusOr<Envelope> general = internal::DecodeEnvelopeGeneral(body);
    ASSERT_EQ(fast.ok(), general.ok()) << body;
    if (fast.ok()) {
      EXPECT_EQ(*fast, *general) << body;
    } else {
      EXPECT_EQ(fast.status().message(), general.status().message()) << body;
    }
  }
  EXPECT_FALSE(DecodeEnvelope(bodies[bodies.size() - 1]).ok());
  EXPECT_TRUE(DecodeEnvelope(bodies[bodies.size() - 2]).ok());
}

// EncodeEnvelope() writes the body piece by piece; it must be the text nlohmann's ordered_json
// writes for the same object (how it was built before), escapes and fallbacks included.
TEST(EnvelopeTest, EncodingIsWhatOrderedJsonWrites) {
  const auto reference = [](const Envelope& envelope) {
    const auto format = [](system_clock::time_point at) {
      return std::chrono::floor<seconds>(at) == at ? FormatRfc3339Utc(at) : FormatRfc3339UtcMillis(at);
    };
    nlohmann::ordered_json body;
    body["job"] = envelope.job;
    body["task"] = envelope.task;
    body["scheduled_at"] = format(envelope.scheduled_at);
    body["fired_at"] = format(envelope.fired_at);
    std::string text = body.dump(-1, ' ', false, json::error_handler_t::replace);
    if (!IsValidMessageText(text)) text = body.dump(-1, ' ', true, json::error_handler_t::replace);
    return text;
  };
  const system_clock::time_point at = At("2026-03-08T04:00:00Z");
  const Envelope cases[] = {
      {"daily-report", json{{"report", "sales"}, {"b", {1, 2.5, nullptr, true}}}, at, at + milliseconds(12)},
      {"quote\"back\\slash", json("t"), at, at},
      {"tab\tnewline\ncontrol\x01", json::object(), at, at},
      {"caf\u00e9 \U0001F600", json("\u6e2c\u8a66"), at, at},
      {"bad \xC3 utf8", json("bad \xC3"), at, at},
      {"refused \xEF\xBF\xBE", json("x"), at, at},
      {"j", json{{"refused", "\xEF\xBF\xBE"}, {"\u00e9", "\u00e9"}}, at, at},
      {"j", json("t"), At("1970-01-01T00:00:00Z"), At("2261-12-31T23:59:59.999Z")},
      {"j", json("t"), At("1900-02-28T23:59:59.001Z"), at + std::chrono::microseconds(5)},
  };
  for (const Envelope& envelope : cases) EXPECT_EQ(EncodeEnvelope(envelope), reference(envelope)) << envelope.job;
}

}  // namespace
}  // namespace taskpipe
