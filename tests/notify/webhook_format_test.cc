#include "notify/webhook_format.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/task_result.h"
#include "net/http_client.h"
#include "notify/notify.h"

namespace taskpipe {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using json = nlohmann::json;
using namespace std::chrono_literals;
using Kind = DeliveryVerdict::Kind;

constexpr std::string_view kFffd = "\xEF\xBF\xBD";
constexpr std::string_view kZwsp = "\xE2\x80\x8B";
constexpr std::string_view kGrin = "\xF0\x9F\x98\x80";  // 😀, 4 bytes

// ----- Independent checkers (deliberately not the code under test) -----------------------------

// Strict UTF-8 well-formedness (Unicode Table 3-7), written out byte by byte.
bool IsValidUtf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    int n = 0;
    unsigned lo = 0x80, hi = 0xBF;
    if (b <= 0x7F) {
      ++i;
      continue;
    } else if (b >= 0xC2 && b <= 0xDF) {
      n = 1;
    } else if (b == 0xE0) {
      n = 2, lo = 0xA0;
    } else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) {
      n = 2;
    } else if (b == 0xED) {
      n = 2, hi = 0x9F;
    } else if (b == 0xF0) {
      n = 3, lo = 0x90;
    } else if (b >= 0xF1 && b <= 0xF3) {
      n = 3;
    } else if (b == 0xF4) {
      n = 3, hi = 0x8F;
    } else {
      return false;
    }
    if (i + static_cast<std::size_t>(n) >= s.size()) return false;  // truncated
    for (int k = 1; k <= n; ++k) {
      const auto c = static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)]);
      const unsigned l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
      if (c < l || c > h) return false;
    }
    i += static_cast<std::size_t>(n) + 1;
  }
  return true;
}

// Code points of valid UTF-8, counted from the lead bytes.
std::size_t Chars(std::string_view s) {
  std::size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

std::size_t Count(std::string_view haystack, std::string_view needle) {
  std::size_t n = 0;
  for (std::size_t pos = haystack.find(needle); pos != std::string_view::npos;
       pos = haystack.find(needle, pos + 1))
    ++n;
  return n;
}

std::string Repeat(std::string_view s, std::size_t n) {
  std::string out;
  out.reserve(s.size() * n);
  for (std::size_t i = 0; i < n; ++i) out.append(s);
  return out;
}

// Every string value in a JSON document, recursively.
void CollectStrings(const json& j, std::vector<std::string>& out) {
  if (j.is_string()) {
    out.push_back(j.get<std::string>());
  } else if (j.is_structured()) {
    for (const auto& item : j) CollectStrings(item, out);
  }
}

json Parse(const std::string& payload) {
  json j = json::parse(payload, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(j.is_discarded()) << payload.substr(0, 500);
  return j;
}

std::chrono::system_clock::time_point At(std::int64_t unix_ms) {
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(unix_ms));
}

TaskResult Result(TaskStatus status = TaskStatus::kFailure) {
  TaskResult r;
  r.job = "nightly-report";
  r.task = R"({"report":"sales"})";
  r.message_id = "1f3c9a2e-0000-4000-8000-000000000001";
  r.receive_count = 3;
  r.status = status;
  r.duration = 12345ms;
  r.output = "line 1\nline 2\n";
  r.error = status == TaskStatus::kSuccess ? "" : "exit status 1";
  r.scheduled_at = At(1772953200000);  // 2026-03-08T07:00:00Z
  r.finished_at = At(1772953500250);   // 2026-03-08T07:05:00.250Z
  r.will_retry = false;
  return r;
}

// A TaskResult that tries everything at once: mentions and markup in every field, huge fields,
// multi-byte and invalid bytes.
TaskResult Hostile() {
  TaskResult r = Result(TaskStatus::kFailure);
  r.job = "<!channel> @everyone " + Repeat("j\xC3\xA9", 5000);  // 10k characters
  r.task = R"({"who":"<@U999> <!here> @here & <b>","x":")" + Repeat("t", 20000) + "\"}";
  r.message_id = "<@U123>" + Repeat("m", 1000);
  r.error = "<!channel> failed & <@&789> @everyone " + Repeat("e", 10000);
  std::string output = "HEAD-MARK\n";
  while (output.size() < (1u << 20))
    output += "<!channel> <@U1> @everyone & ``` <b>x</b> \xC3\xA9\xF0\x9F\x98\x80 \x80\xC0\xAF\n";
  r.output = output + "END-MARK";
  return r;
}

std::string Escaped(std::string_view s) { return EscapeSlack(s); }

// ===== Utf8: SanitizeUtf8, Utf8Length, TruncateUtf8 =============================================

TEST(Utf8SanitizeTest, Table) {
  const std::string fffd(kFffd);
  struct Case {
    std::string name, in, want;
  };
  const std::vector<Case> cases = {
      {"ascii", "hello, world", "hello, world"},
      {"valid multi-byte kept", "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80",
       "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"},
      {"lone continuation byte", "a\x80z", "a" + fffd + "z"},
      {"overlong 2-byte C0 AF (two maximal subparts)",
       "a\xC0\xAF"
       "b",
       "a" + fffd + fffd + "b"},
      {"overlong 3-byte E0 80 80", "\xE0\x80\x80", fffd + fffd + fffd},
      {"surrogate ED A0 80", "\xED\xA0\x80", fffd + fffd + fffd},
      {"above U+10FFFF F4 90 80 80", "\xF4\x90\x80\x80", fffd + fffd + fffd + fffd},
      {"F5..FF never lead", "\xF5\xFF", fffd + fffd},
      {"truncated 4-byte at end", "x\xF0\x9F", "x" + fffd},
      {"truncated 3-byte before ascii",
       "\xE2\x82"
       "x",
       fffd + "x"},
      {"truncated 4-byte then valid",
       "\xF0\x9F\x98"
       "\xC3\xA9",
       fffd + "\xC3\xA9"},
      {"NUL dropped", std::string("a\0b", 3), "ab"},
      {"CRLF becomes LF", "line\r\nnext\r\n", "line\nnext\n"},
      {"lone CR and other C0 dropped",
       "a\rb\x07"
       "c\x1f"
       "d",
       "abcd"},
      {"tab and newline kept", "a\tb\nc", "a\tb\nc"},
      {"ANSI colour sequences dropped", "\x1b[1;31mred\x1b[0m plain", "red plain"},
      {"bare ESC dropped",
       "a\x1b"
       "b",
       "ab"},
      {"DEL kept",
       "a\x7f"
       "b",
       "a\x7f"
       "b"},
      {"empty", "", ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string got = SanitizeUtf8(c.in);
    EXPECT_EQ(got, c.want);
    EXPECT_TRUE(IsValidUtf8(got));
  }
}

TEST(Utf8SanitizeTest, RandomBytesAlwaysComeOutValid) {
  std::mt19937 rng(12345);
  std::uniform_int_distribution<int> byte(0, 255), len(0, 64);
  for (int round = 0; round < 3000; ++round) {
    std::string in(static_cast<std::size_t>(len(rng)), '\0');
    for (char& c : in) c = static_cast<char>(byte(rng));
    const std::string out = SanitizeUtf8(in);
    ASSERT_TRUE(IsValidUtf8(out)) << round;
    for (char c : out) {
      const auto u = static_cast<unsigned char>(c);
      ASSERT_TRUE(u >= 0x20 || c == '\n' || c == '\t') << "control byte " << int(u) << " in round " << round;
    }
    ASSERT_EQ(SanitizeUtf8(out), out) << "not idempotent in round " << round;
  }
}

TEST(Utf8LengthTest, CountsCodePoints) {
  EXPECT_EQ(Utf8Length(""), 0u);
  EXPECT_EQ(Utf8Length("abc"), 3u);
  EXPECT_EQ(Utf8Length("\xC3\xA9"), 1u);
  EXPECT_EQ(Utf8Length(kGrin), 1u);
  EXPECT_EQ(Utf8Length("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80z"), 5u);
  EXPECT_EQ(Utf8Length(kTruncatedHeadMarker), 13u);
  EXPECT_EQ(Utf8Length(kTruncatedTailMarker), 13u);
}

TEST(Utf8TruncateTest, Table) {
  const std::string head(kTruncatedHeadMarker), tail(kTruncatedTailMarker);
  const std::string alphabet = "abcdefghijklmnopqrstuvwxyz";
  struct Case {
    std::string name, in;
    std::size_t max;
    bool keep_tail;
    std::string want;
  };
  const std::vector<Case> cases = {
      {"fits", alphabet, 26, false, alphabet},
      {"fits with room", "abc", 100, true, "abc"},
      {"head kept", alphabet, 20, false, "abcdefg" + head},
      {"tail kept", alphabet, 20, true, tail + "tuvwxyz"},
      {"exactly one over", alphabet, 25, false, alphabet.substr(0, 12) + head},
      {"no room for a marker: bare head", alphabet, 5, false, "abcde"},
      {"no room for a marker: bare tail", alphabet, 5, true, "vwxyz"},
      {"zero", alphabet, 0, false, ""},
      {"multi-byte head", Repeat("\xC3\xA9", 30), 16, false, Repeat("\xC3\xA9", 3) + head},
      {"emoji tail", Repeat(kGrin, 30), 15, true, tail + Repeat(kGrin, 2)},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string got = TruncateUtf8(c.in, c.max, c.keep_tail);
    EXPECT_EQ(got, c.want);
    EXPECT_LE(Chars(got), c.max);
  }
}

TEST(Utf8TruncateTest, NeverSplitsACodePointAtAnyBoundary) {
  // Mixed widths so that every cut position meets every kind of boundary.
  const std::string text = Repeat(std::string("a\xC3\xA9\xE2\x82\xAC") + std::string(kGrin), 40);
  const std::size_t length = Chars(text);
  for (bool keep_tail : {false, true}) {
    for (std::size_t max = 0; max <= length + 1; ++max) {
      SCOPED_TRACE("max " + std::to_string(max) + (keep_tail ? " tail" : " head"));
      const std::string got = TruncateUtf8(text, max, keep_tail);
      ASSERT_TRUE(IsValidUtf8(got));
      ASSERT_LE(Chars(got), max);
      if (max >= length) {
        ASSERT_EQ(got, text);
      } else if (max > 13) {
        ASSERT_EQ(Chars(got), max);  // uses all the room it has
        if (keep_tail) {
          ASSERT_THAT(got, StartsWith(std::string(kTruncatedTailMarker)));
          ASSERT_THAT(text, EndsWith(got.substr(kTruncatedTailMarker.size())));
        } else {
          ASSERT_THAT(got, EndsWith(std::string(kTruncatedHeadMarker)));
          ASSERT_THAT(text, StartsWith(got.substr(0, got.size() - kTruncatedHeadMarker.size())));
        }
      }
    }
  }
}

// ===== WebhookFormat: escaping, fences, durations ===============================================

TEST(WebhookFormatTest, EscapeSlackTouchesOnlyTheThreeControlCharacters) {
  EXPECT_EQ(EscapeSlack("<!channel> & <@U123> a>b"), "&lt;!channel&gt; &amp; &lt;@U123&gt; a&gt;b");
  EXPECT_EQ(EscapeSlack("*bold* _it_ ~s~ `c` \"q\" 'a' \xC3\xA9"), "*bold* _it_ ~s~ `c` \"q\" 'a' \xC3\xA9");
  EXPECT_EQ(EscapeSlack("&amp;"), "&amp;amp;");  // already-escaped text is text too
  EXPECT_EQ(EscapeSlack(""), "");
}

TEST(WebhookFormatTest, DefuseCodeFencesBreaksEveryRunOfThreeOrMore) {
  const std::string z(kZwsp);
  EXPECT_EQ(DefuseCodeFences("```"), "`" + z + "`" + z + "`");
  EXPECT_EQ(DefuseCodeFences("a````b"), "a`" + z + "`" + z + "`" + z + "`b");
  EXPECT_EQ(DefuseCodeFences("`x` ``y``"), "`x` ``y``");  // inline code is left alone
  EXPECT_EQ(DefuseCodeFences("no fences"), "no fences");
  const std::string nasty = "```\n@everyone\n```js\n``````";
  const std::string defused = DefuseCodeFences(nasty);
  EXPECT_EQ(Count(defused, "``"), 0u);
  EXPECT_EQ(Count(defused, "`"), Count(nasty, "`"));
}

TEST(WebhookFormatTest, FormatDurationForHumansTable) {
  const std::vector<std::pair<std::chrono::milliseconds, std::string>> cases = {
      {0ms, "0 ms"},
      {-5ms, "0 ms"},
      {850ms, "850 ms"},
      {999ms, "999 ms"},
      {1000ms, "1.0 s"},
      {12345ms, "12.3 s"},
      {59999ms, "59.9 s"},
      {60000ms, "1 min 00 s"},
      {245000ms, "4 min 05 s"},
      {3599999ms, "59 min 59 s"},
      {3600000ms, "1 h 00 min"},
      {7380000ms, "2 h 03 min"},
      {49h, "49 h 00 min"},
  };
  for (const auto& [duration, want] : cases)
    EXPECT_EQ(FormatDurationForHumans(duration), want) << duration.count();
}

// ===== Template =================================================================================

TEST(TemplateTest, EveryPlaceholder) {
  TaskResult r = Result();
  r.will_retry = true;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{job}", "nightly-report"},
      {"{task}", R"({"report":"sales"})"},
      {"{status}", "failure"},
      {"{duration}", "12.3 s"},
      {"{attempt}", "3"},
      {"{message_id}", "1f3c9a2e-0000-4000-8000-000000000001"},
      {"{output}", "line 1\nline 2"},
      {"{error}", "exit status 1"},
      {"{scheduled_at}", "2026-03-08T07:00:00Z"},
      {"{finished_at}", "2026-03-08T07:05:00Z"},
      {"{retry}", "will retry"},
      {"[{job}|{status}|{attempt}]", "[nightly-report|failure|3]"},
      {"{{job}} is {job}", "{job} is nightly-report"},
      {"}} {{ } {{{job}}}", "} { } {nightly-report}"},
      {"no placeholders", "no placeholders"},
      {"", ""},
  };
  for (const auto& [tmpl, want] : cases) {
    EXPECT_TRUE(ValidateTemplate(tmpl).ok()) << tmpl;
    EXPECT_EQ(RenderTemplate(tmpl, r, nullptr, 1000), want) << tmpl;
  }
}

TEST(TemplateTest, EmptyValues) {
  TaskResult r = Result(TaskStatus::kSuccess);
  r.job = "";
  r.scheduled_at = {};
  r.finished_at = {};
  r.will_retry = false;
  r.output = "  \n\n";
  EXPECT_EQ(RenderTemplate("{job}", r, nullptr, 100), "(unknown job)");
  EXPECT_EQ(RenderTemplate("[{scheduled_at}][{finished_at}][{retry}][{error}][{output}]", r, nullptr, 100),
            "[][][][][]");
}

TEST(TemplateTest, UnknownPlaceholdersAndUnclosedBracesRenderLiterally) {
  const TaskResult r = Result();
  EXPECT_EQ(RenderTemplate("{nope} {job}", r, nullptr, 10), "{nope} nightly-report");
  EXPECT_EQ(RenderTemplate("{job {status}", r, nullptr, 10), "{job failure");
  EXPECT_EQ(RenderTemplate("tail {", r, nullptr, 10), "tail {");
}

TEST(TemplateTest, ValidateNamesTheUnknownPlaceholderAndListsTheKnownOnes) {
  const Status s = ValidateTemplate("{job} ran {jobb}");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("unknown placeholder \"{jobb}\""));
  EXPECT_THAT(s.message(), HasSubstr("offset 10"));
  for (const char* known : {"{job}", "{task}", "{status}", "{duration}", "{attempt}", "{message_id}",
                            "{output}", "{error}", "{scheduled_at}", "{finished_at}", "{retry}", "{{"}) {
    EXPECT_THAT(s.message(), HasSubstr(known));
  }
  // A JSON object in a template must double its braces.
  EXPECT_FALSE(ValidateTemplate(R"(payload {"a":1})").ok());
  EXPECT_TRUE(ValidateTemplate(R"(payload {{"a":1}})").ok());
}

TEST(TemplateTest, ValidateReportsAnUnclosedBraceWithItsOffset) {
  for (std::string_view tmpl : {"{job", "abc {job {status}", "{"}) {
    const Status s = ValidateTemplate(tmpl);
    ASSERT_FALSE(s.ok()) << tmpl;
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(s.message(), HasSubstr("unclosed \"{\""));
  }
  EXPECT_THAT(ValidateTemplate("abc {job {status}").message(), HasSubstr("offset 4"));
  EXPECT_THAT(ValidateTemplate("{x} {").message(), HasSubstr("unknown placeholder"));  // the first fault
}

TEST(TemplateTest, ValuesAreEscapedButTheTemplateIsNot) {
  TaskResult r = Result();
  r.job = "<!channel> & co";
  r.output = "<@U1> ok";
  EXPECT_EQ(RenderTemplate("<https://runbook.example/x|runbook> {job}: {output}", r, Escaped, 100),
            "<https://runbook.example/x|runbook> &lt;!channel&gt; &amp; co: &lt;@U1&gt; ok");
}

TEST(TemplateTest, OutputKeepsItsTailAndSaysItWasCut) {
  TaskResult r = Result();
  r.output = "HEAD\n" + std::string(1000, 'x') + "\nTAIL\n\n";
  const std::string got = RenderTemplate("{output}", r, nullptr, 50);
  EXPECT_EQ(Chars(got), 50u);
  EXPECT_THAT(got, StartsWith(std::string(kTruncatedTailMarker)));
  EXPECT_THAT(got, EndsWith("x\nTAIL"));
  EXPECT_THAT(got, Not(HasSubstr("HEAD")));
  EXPECT_EQ(RenderTemplate("{output}", r, nullptr, 0), "");
}

TEST(TemplateTest, MegabyteOutputIsCutFromTheTail) {
  TaskResult r = Result();
  r.output = std::string(1 << 20, 'y') + "\nLAST LINE \xF0\x9F\x98\x80";
  const std::string got = RenderTemplate("{output}", r, nullptr, 100);
  EXPECT_TRUE(IsValidUtf8(got));
  EXPECT_EQ(Chars(got), 100u);
  EXPECT_THAT(got, StartsWith(std::string(kTruncatedTailMarker)));
  EXPECT_THAT(got, EndsWith("LAST LINE \xF0\x9F\x98\x80"));
  // Even when what is left after dropping control characters would fit, the cut is announced.
  r.output = std::string(1 << 20, '\0') + "short";
  EXPECT_EQ(RenderTemplate("{output}", r, nullptr, 100), std::string(kTruncatedTailMarker) + "short");
}

TEST(TemplateTest, OutputCannotCloseACodeBlock) {
  TaskResult r = Result();
  r.output = "before\n```\n<!channel> outside?\n```";
  const std::string got = RenderTemplate("```\n{output}\n```", r, nullptr, 1000);
  EXPECT_EQ(Count(got, "```"), 2u);
  EXPECT_THAT(got, HasSubstr("<!channel> outside?"));
}

TEST(TemplateTest, LongValuesAreCut) {
  TaskResult r = Result();
  r.task = "{\"x\":\"" + std::string(10000, 't') + "\"}";
  r.job = Repeat("\xC3\xA9", 10000);
  r.error = std::string(5000, 'e');
  r.message_id = std::string(5000, 'm');
  const std::vector<std::pair<std::string, std::size_t>> caps = {
      {"{task}", 500}, {"{job}", 200}, {"{error}", 1000}, {"{message_id}", 200}};
  for (const auto& [tmpl, cap] : caps) {
    const std::string got = RenderTemplate(tmpl, r, nullptr, 100);
    EXPECT_EQ(Chars(got), cap) << tmpl;
    EXPECT_THAT(got, EndsWith(std::string(kTruncatedHeadMarker))) << tmpl;
    EXPECT_TRUE(IsValidUtf8(got)) << tmpl;
  }
}

TEST(TemplateTest, InvalidUtf8InValuesAndTemplateIsRepaired) {
  TaskResult r = Result();
  r.job = "bad\x80job";
  r.output = "\xC0\xAF\xED\xA0\x80\xF0\x9F";
  r.error = std::string("nul\0here\r\n", 10);
  const std::string got = RenderTemplate("t\xFF {job} {output} {error}", r, nullptr, 100);
  EXPECT_TRUE(IsValidUtf8(got));
  const std::string f(kFffd);
  EXPECT_EQ(got, "t" + f + " bad" + f + "job " + Repeat(f, 6) + " nulhere");
}

// ===== Slack ====================================================================================

std::string SlackSection(const json& payload) {
  for (const json& block : payload["attachments"][0]["blocks"]) {
    if (block["type"] == "section") return block["text"]["text"].get<std::string>();
  }
  return "";
}

std::string SlackContext(const json& payload) {
  for (const json& block : payload["attachments"][0]["blocks"]) {
    if (block["type"] == "context") return block["elements"][0]["text"].get<std::string>();
  }
  return "";
}

// Every limit, checked on any payload.
void ExpectSlackWithinLimits(const json& p) {
  ASSERT_TRUE(p.is_object());
  ASSERT_TRUE(p["text"].is_string());
  EXPECT_LE(Chars(p["text"].get<std::string>()), kSlackTextMaxChars);
  ASSERT_EQ(p["attachments"].size(), 1u);
  const json& blocks = p["attachments"][0]["blocks"];
  EXPECT_LE(blocks.size(), kSlackMaxBlocks);
  for (const json& block : blocks) {
    if (block["type"] == "section") {
      EXPECT_EQ(block["text"]["type"], "mrkdwn");
      EXPECT_LE(Chars(block["text"]["text"].get<std::string>()), kSlackSectionTextMaxChars);
      EXPECT_GE(Chars(block["text"]["text"].get<std::string>()), 1u);
    } else {
      EXPECT_EQ(block["type"], "context");
      EXPECT_LE(block["elements"].size(), 10u);
      EXPECT_LE(Chars(block["elements"][0]["text"].get<std::string>()), kSlackContextTextMaxChars);
    }
  }
  std::vector<std::string> strings;
  CollectStrings(p, strings);
  for (const std::string& s : strings) EXPECT_TRUE(IsValidUtf8(s));
}

TEST(SlackPayloadTest, SuccessLooksRight) {
  const TaskResult r = Result(TaskStatus::kSuccess);
  const json p = Parse(BuildSlackPayload(r, {.mention_on_failure = {"U0123ABC", "channel"}}));
  ExpectSlackWithinLimits(p);
  EXPECT_EQ(p["text"], "\u2705 nightly-report: success");  // no mentions on success
  EXPECT_EQ(p["attachments"][0]["color"], "#2eb886");
  EXPECT_EQ(p["unfurl_links"], false);
  EXPECT_EQ(p["unfurl_media"], false);
  EXPECT_EQ(SlackSection(p),
            "*Duration:* 12.3 s\n*Task:* `{\"report\":\"sales\"}`\n```\nline 1\nline 2\n```");
  EXPECT_EQ(
      SlackContext(p),
      "message 1f3c9a2e-0000-4000-8000-000000000001 \u00B7 attempt 3 \u00B7 scheduled 2026-03-08T07:00:00Z");
  ASSERT_EQ(p["attachments"][0]["blocks"].size(), 2u);
}

TEST(SlackPayloadTest, FailureMentionsConfiguredPeopleFirst) {
  TaskResult r = Result(TaskStatus::kFailure);
  r.will_retry = true;
  SlackOptions options;
  options.mention_on_failure = {"U0123ABC",  "S0GROUP1",   "here", "channel", "W999",
                                "not an id", "<!channel>", "u1",   "U0123ABC"};
  const json p = Parse(BuildSlackPayload(r, options));
  ExpectSlackWithinLimits(p);
  EXPECT_EQ(p["text"],
            "<@U0123ABC> <!subteam^S0GROUP1> <!here> <!channel> <@W999> \u274C nightly-report: failure (will "
            "retry)");
  EXPECT_EQ(p["attachments"][0]["color"], "#a30200");
  EXPECT_EQ(SlackSection(p),
            "*Duration:* 12.3 s \u00B7 will retry\n*Error:* exit status 1\n*Task:* `{\"report\":\"sales\"}`\n"
            "```\nline 1\nline 2\n```");
}

TEST(SlackPayloadTest, ColourAndSymbolPerStatusAndMentionsOnlyOnFailures) {
  struct Case {
    TaskStatus status;
    std::string color, title;
    bool mentions;
  };
  const std::vector<Case> cases = {
      {TaskStatus::kSuccess, "#2eb886", "\u2705 nightly-report: success", false},
      {TaskStatus::kFailure, "#a30200", "\u274C nightly-report: failure", true},
      {TaskStatus::kTimeout, "#daa038", "\u23F1\uFE0F nightly-report: timeout", true},
      {TaskStatus::kInvalid, "#e01e5a", "\u26A0\uFE0F nightly-report: invalid", true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(TaskStatusName(c.status));
    const json p = Parse(BuildSlackPayload(Result(c.status), {.mention_on_failure = {"U1"}}));
    EXPECT_EQ(p["attachments"][0]["color"], c.color);
    EXPECT_EQ(p["text"], (c.mentions ? "<@U1> " : "") + c.title);
  }
}

TEST(SlackPayloadTest, NothingFromTheTaskCanMentionAnyone) {
  TaskResult r = Result(TaskStatus::kFailure);
  r.job = "<!channel>";
  r.task = R"({"x":"<@U999> <!here> <!subteam^S1>"})";
  r.output = "@everyone <!everyone> <@U1|bob> & <https://evil.example|click>";
  r.error = "<!channel> failed & gone";
  r.message_id = "<@U2>";
  const json p = Parse(BuildSlackPayload(r, {}));
  ExpectSlackWithinLimits(p);
  std::vector<std::string> strings;
  CollectStrings(p, strings);
  for (const std::string& s : strings) {
    EXPECT_THAT(s, Not(HasSubstr("<!"))) << s;
    EXPECT_THAT(s, Not(HasSubstr("<@"))) << s;
    EXPECT_THAT(s, Not(HasSubstr("<http"))) << s;
  }
  EXPECT_EQ(p["text"], "\u274C &lt;!channel&gt;: failure");
  EXPECT_THAT(SlackSection(p), HasSubstr("*Error:* &lt;!channel&gt; failed &amp; gone"));
  EXPECT_THAT(
      SlackSection(p),
      HasSubstr("@everyone &lt;!everyone&gt; &lt;@U1|bob&gt; &amp; &lt;https://evil.example|click&gt;"));
  EXPECT_THAT(SlackContext(p), HasSubstr("message &lt;@U2&gt;"));
}

TEST(SlackPayloadTest, EveryLimitHoldsForHugeInput) {
  const TaskResult r = Hostile();
  const std::string payload = BuildSlackPayload(r, {.mention_on_failure = {"U1"}});
  const json p = Parse(payload);
  ExpectSlackWithinLimits(p);
  const std::string section = SlackSection(p);
  EXPECT_GT(Chars(section), 2000u);                                    // uses its room rather than giving up
  EXPECT_THAT(section, HasSubstr(std::string(kTruncatedTailMarker)));  // the output was cut...
  EXPECT_THAT(section, EndsWith("END-MARK\n```"));                     // ...from the head
  EXPECT_THAT(section, Not(HasSubstr("HEAD-MARK")));
  EXPECT_EQ(Count(section, "```"), 2u);
  EXPECT_THAT(p["text"].get<std::string>(), StartsWith("<@U1> \u274C &lt;!channel&gt; @everyone j\xC3\xA9"));
  EXPECT_LT(payload.size(), 64u * 1024);
}

TEST(SlackPayloadTest, MultiByteTitleIsCutOnACodePoint) {
  TaskResult r = Result(TaskStatus::kTimeout);
  r.job = Repeat(kGrin, 300);
  const json p = Parse(BuildSlackPayload(r, {.templates = {.title = "{job}{job}{job}", .body = ""}}));
  ExpectSlackWithinLimits(p);
  const std::string text = p["text"];
  EXPECT_EQ(Chars(text), 500u);  // our own cap on the title
  EXPECT_THAT(text, EndsWith(std::string(kTruncatedHeadMarker)));
}

TEST(SlackPayloadTest, EmptyPartsAreLeftOut) {
  TaskResult r = Result(TaskStatus::kSuccess);
  r.output = "\n\n";
  r.task = "";
  r.message_id = "";
  r.receive_count = 0;
  r.scheduled_at = {};
  const json p = Parse(BuildSlackPayload(r, {}));
  ExpectSlackWithinLimits(p);
  ASSERT_EQ(p["attachments"][0]["blocks"].size(), 1u);  // no context block
  EXPECT_EQ(SlackSection(p), "*Duration:* 12.3 s");
  // A custom body that renders empty leaves the section out (an empty text is invalid_blocks).
  const json q =
      Parse(BuildSlackPayload(Result(TaskStatus::kSuccess), {.templates = {.title = "", .body = "{error}"}}));
  ExpectSlackWithinLimits(q);
  ASSERT_EQ(q["attachments"][0]["blocks"].size(), 1u);
  EXPECT_EQ(q["attachments"][0]["blocks"][0]["type"], "context");
  // A title that renders empty still posts something.
  const json t =
      Parse(BuildSlackPayload(Result(TaskStatus::kSuccess), {.templates = {.title = "{error}", .body = ""}}));
  EXPECT_EQ(t["text"], "success");
}

TEST(SlackPayloadTest, CustomTemplates) {
  TaskResult r = Result(TaskStatus::kFailure);
  r.output = "a < b";
  SlackOptions options;
  options.templates = {.title = "{job} <https://runbook.example/nightly|runbook>",
                       .body = "*{status}* after {duration}: {output}"};
  options.mention_on_failure = {"here"};
  const json p = Parse(BuildSlackPayload(r, options));
  ExpectSlackWithinLimits(p);
  EXPECT_EQ(p["text"], "<!here> nightly-report <https://runbook.example/nightly|runbook>");
  EXPECT_EQ(SlackSection(p), "*failure* after 12.3 s: a &lt; b");
}

TEST(SlackPayloadTest, OversizedTemplateTextIsCutWithoutBreakingAnEntity) {
  // Template text is not escaped, but a cut through it must not leave "&am" behind.
  TaskResult r = Result();
  SlackOptions options;
  for (std::size_t pad = 0; pad < 6; ++pad) {  // every cut position within "x&amp;"
    options.templates.body = std::string(pad, 'p') + Repeat("x&amp;", 1000);
    const json p = Parse(BuildSlackPayload(r, options));
    ExpectSlackWithinLimits(p);
    const std::string section = SlackSection(p);
    ASSERT_THAT(section, EndsWith(std::string(kTruncatedHeadMarker)));
    const std::string before = section.substr(0, section.size() - kTruncatedHeadMarker.size());
    EXPECT_GE(Chars(before), 2987u - 4);
    const std::size_t amp = before.rfind('&');
    ASSERT_NE(amp, std::string::npos);
    EXPECT_NE(before.find(';', amp), std::string::npos)
        << "cut entity at pad " << pad << ": " << before.substr(amp);
  }
}

TEST(SlackPayloadTest, EscapedOutputStillFits) {
  // Escaping turns 1 character into 4 or 5: the fitting must account for it.
  TaskResult r = Result();
  r.output = std::string(5000, '<');
  r.error = std::string(300, '&');
  const json p = Parse(BuildSlackPayload(r, {}));
  ExpectSlackWithinLimits(p);
  const std::string section = SlackSection(p);
  EXPECT_THAT(section, HasSubstr(std::string(kTruncatedTailMarker) + "&lt;&lt;"));
  EXPECT_THAT(section, EndsWith("&lt;\n```"));
  EXPECT_GT(Chars(section), 2500u);
}

TEST(SlackPayloadTest, RandomGarbageNeverBreaksThePayload) {
  std::mt19937 rng(777);
  std::uniform_int_distribution<int> byte(0, 255), len(0, 3000);
  auto junk = [&] {
    std::string s(static_cast<std::size_t>(len(rng)), '\0');
    for (char& c : s) c = static_cast<char>(byte(rng));
    return s;
  };
  for (int round = 0; round < 60; ++round) {
    TaskResult r;
    r.job = junk();
    r.task = junk();
    r.message_id = junk();
    r.output = junk() + junk() + junk();
    r.error = junk();
    r.status = static_cast<TaskStatus>(round % 4);
    r.receive_count = round;
    SCOPED_TRACE(round);
    ExpectSlackWithinLimits(Parse(BuildSlackPayload(r, {.templates = {.title = junk(), .body = junk()}})));
    ExpectSlackWithinLimits(Parse(BuildSlackPayload(r, {})));
  }
}

// ----- ClassifySlackResponse ---------------------------------------------------------------------

struct ReplyCase {
  std::string name;
  int status;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  Kind kind;
  std::chrono::milliseconds retry_after;
  bool global;
  std::string error_has;  // "" = error must be empty
};

HttpResponse Reply(const ReplyCase& c) {
  return HttpResponse{.status = c.status, .headers = c.headers, .body = c.body};
}

void ExpectVerdict(const DeliveryVerdict& v, const ReplyCase& c) {
  EXPECT_EQ(v.kind, c.kind);
  EXPECT_EQ(v.retry_after, c.retry_after);
  EXPECT_EQ(v.global, c.global);
  if (c.error_has.empty()) {
    EXPECT_EQ(v.error, "");
  } else {
    EXPECT_THAT(v.error, HasSubstr(c.error_has));
  }
  EXPECT_EQ(v.error.find('\n'), std::string::npos);
  EXPECT_TRUE(IsValidUtf8(v.error));
  EXPECT_LE(v.error.size(), 400u);
}

TEST(SlackClassifyTest, Table) {
  const std::string html = "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>" +
                           std::string(5000, '.') + "</body></html>";
  const std::vector<ReplyCase> cases = {
      {"ok", 200, {}, "ok", Kind::kDelivered, 0ms, false, ""},
      {"ok empty body", 200, {}, "", Kind::kDelivered, 0ms, false, ""},
      {"invalid_payload",
       400,
       {},
       "invalid_payload",
       Kind::kRejected,
       0ms,
       false,
       "Slack answered 400 \"invalid_payload\""},
      {"no_text", 400, {}, "no_text", Kind::kRejected, 0ms, false, "\"no_text\""},
      {"too_many_attachments",
       400,
       {},
       "too_many_attachments",
       Kind::kRejected,
       0ms,
       false,
       "too_many_attachments"},
      {"user_not_found", 400, {}, "user_not_found", Kind::kRejected, 0ms, false, "user_not_found"},
      {"other 4xx", 413, {}, "", Kind::kRejected, 0ms, false, "Slack answered 413"},
      {"action_prohibited",
       403,
       {},
       "action_prohibited",
       Kind::kDead,
       0ms,
       false,
       "403 \"action_prohibited\""},
      {"posting_to_general_channel_denied",
       403,
       {},
       "posting_to_general_channel_denied",
       Kind::kDead,
       0ms,
       false,
       "general"},
      {"invalid_token", 403, {}, "invalid_token", Kind::kDead, 0ms, false, "invalid_token"},
      {"invalid_token as JSON",
       403,
       {},
       R"({"ok":false,"error":"invalid_token"})",
       Kind::kDead,
       0ms,
       false,
       "invalid_token"},
      {"no_service", 404, {}, "no_service", Kind::kDead, 0ms, false, "Slack answered 404 \"no_service\""},
      {"channel_not_found", 404, {}, "channel_not_found", Kind::kDead, 0ms, false, "channel_not_found"},
      {"channel_is_archived", 410, {}, "channel_is_archived", Kind::kDead, 0ms, false, "410"},
      {"team_disabled on a 400", 400, {}, "team_disabled", Kind::kDead, 0ms, false, "team_disabled"},
      {"no_team", 404, {}, "no_team", Kind::kDead, 0ms, false, "no_team"},
      {"401 empty", 401, {}, "", Kind::kDead, 0ms, false, "Slack answered 401"},
      {"no_service on an old-style 500", 500, {}, "no_service", Kind::kDead, 0ms, false, "no_service"},
      {"rollup_error",
       500,
       {},
       "rollup_error",
       Kind::kRetry,
       0ms,
       false,
       "Slack answered 500 \"rollup_error\""},
      {"502 html",
       502,
       {{"Content-Type", "text/html"}},
       html,
       Kind::kRetry,
       0ms,
       false,
       "Slack answered 502 \"<html> <head>"},
      {"503 empty", 503, {}, "", Kind::kRetry, 0ms, false, "Slack answered 503"},
      {"408", 408, {}, "", Kind::kRetry, 0ms, false, "408"},
      {"302", 302, {{"Location", "https://slack.com/"}}, "", Kind::kRetry, 0ms, false, "302"},
      {"429 Retry-After 1",
       429,
       {{"Retry-After", "1"}},
       "",
       Kind::kRateLimited,
       1000ms,
       false,
       "retry after 1 s"},
      {"429 Retry-After 30",
       429,
       {{"retry-after", "30"}},
       R"({"ok":false,"error":"rate_limited"})",
       Kind::kRateLimited,
       30000ms,
       false,
       "429"},
      {"429 Retry-After 0.5",
       429,
       {{"Retry-After", " 0.5 "}},
       "",
       Kind::kRateLimited,
       500ms,
       false,
       "retry after 0.5 s"},
      {"429 Retry-After 0",
       429,
       {{"Retry-After", "0"}},
       "",
       Kind::kRateLimited,
       0ms,
       false,
       "retry after 0 s"},
      {"429 garbage",
       429,
       {{"Retry-After", "soon"}},
       "",
       Kind::kRateLimited,
       1000ms,
       false,
       "retry after 1 s"},
      {"429 negative", 429, {{"Retry-After", "-3"}}, "", Kind::kRateLimited, 1000ms, false, "429"},
      {"429 HTTP-date",
       429,
       {{"Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT"}},
       "",
       Kind::kRateLimited,
       1000ms,
       false,
       "429"},
      {"429 absent", 429, {}, "", Kind::kRateLimited, 1000ms, false, "429"},
      {"429 absurd is capped",
       429,
       {{"Retry-After", "1e12"}},
       "",
       Kind::kRateLimited,
       3600000ms,
       false,
       "3600 s"},
  };
  for (const ReplyCase& c : cases) {
    SCOPED_TRACE(c.name);
    ExpectVerdict(ClassifySlackResponse(Reply(c)), c);
  }
}

TEST(SlackClassifyTest, ErrorQuotesLittleOfTheBodyAndNeverAWebhookUrl) {
  HttpResponse response{
      .status = 404,
      .headers = {},
      .body = "no_service\nsee https://hooks.slack.com/services/T0000/B0000/XXsecretXXsecretXX\n" +
              std::string(10000, 'z') + "\xC0\xAF"};
  const DeliveryVerdict v = ClassifySlackResponse(response);
  EXPECT_EQ(v.kind, Kind::kDead);
  EXPECT_THAT(v.error, Not(HasSubstr("XXsecretXX")));
  EXPECT_THAT(v.error, Not(HasSubstr("B0000")));
  EXPECT_THAT(v.error, HasSubstr("Slack answered 404 \"no_service see https://hooks.slack.com/"));
  EXPECT_LE(v.error.size(), 260u);
  EXPECT_TRUE(IsValidUtf8(v.error));
  EXPECT_EQ(v.error.find('\n'), std::string::npos);
}

// ===== Discord ==================================================================================

// Every limit, checked on any payload. Returns the embed's counted total.
std::size_t ExpectDiscordWithinLimits(const json& p) {
  EXPECT_TRUE(p.is_object());
  if (!p.is_object()) return 0;
  EXPECT_TRUE(p["content"].is_string());
  EXPECT_LE(Chars(p["content"].get<std::string>()), kDiscordContentMaxChars);
  EXPECT_EQ(p["allowed_mentions"]["parse"], json::array());
  for (const char* list : {"users", "roles"}) {
    if (p["allowed_mentions"].contains(list)) {
      EXPECT_LE(p["allowed_mentions"][list].size(), kDiscordMaxAllowedMentionIds);
    }
  }
  if (p.contains("username")) {
    EXPECT_LE(Chars(p["username"].get<std::string>()), kDiscordUsernameMaxChars);
    EXPECT_GE(Chars(p["username"].get<std::string>()), 1u);
  }
  EXPECT_EQ(p["embeds"].size(), 1u);
  const json& e = p["embeds"][0];
  std::size_t total = 0;
  if (e.contains("title")) {
    const std::size_t n = Chars(e["title"].get<std::string>());
    EXPECT_LE(n, kDiscordTitleMaxChars);
    EXPECT_GE(n, 1u);
    total += n;
  }
  if (e.contains("description")) {
    const std::size_t n = Chars(e["description"].get<std::string>());
    EXPECT_LE(n, kDiscordDescriptionMaxChars);
    EXPECT_GE(n, 1u);
    total += n;
  }
  EXPECT_TRUE(e["color"].is_number_integer());
  EXPECT_LE(e["fields"].size(), kDiscordMaxFields);
  for (const json& f : e["fields"]) {
    const std::size_t name = Chars(f["name"].get<std::string>()),
                      value = Chars(f["value"].get<std::string>());
    EXPECT_LE(name, kDiscordFieldNameMaxChars);
    EXPECT_LE(value, kDiscordFieldValueMaxChars);
    EXPECT_GE(name, 1u);
    EXPECT_GE(value, 1u);
    total += name + value;
  }
  if (e.contains("footer")) {
    const std::size_t n = Chars(e["footer"]["text"].get<std::string>());
    EXPECT_LE(n, kDiscordFooterMaxChars);
    total += n;
  }
  EXPECT_LE(total, kDiscordEmbedTotalMaxChars);
  std::vector<std::string> strings;
  CollectStrings(p, strings);
  for (const std::string& s : strings) EXPECT_TRUE(IsValidUtf8(s));
  return total;
}

TEST(DiscordPayloadTest, FailureLooksRight) {
  TaskResult r = Result(TaskStatus::kFailure);
  r.will_retry = true;
  const json p = Parse(BuildDiscordPayload(r, {}));
  ExpectDiscordWithinLimits(p);
  EXPECT_EQ(p["content"], "");
  EXPECT_EQ(p["allowed_mentions"], json::parse(R"({"parse":[]})"));
  EXPECT_FALSE(p.contains("username"));
  const json& e = p["embeds"][0];
  EXPECT_EQ(e["title"], "\u274C nightly-report: failure (will retry)");
  EXPECT_EQ(e["description"],
            "**Error:** exit status 1\n**Task:** `{\"report\":\"sales\"}`\n```\nline 1\nline 2\n```");
  EXPECT_EQ(e["color"], 0xA30200);
  EXPECT_EQ(e["timestamp"], "2026-03-08T07:05:00.250Z");
  const json fields = json::parse(R"json([{"name":"Status","value":"failure (will retry)","inline":true},
                                          {"name":"Attempt","value":"3","inline":true},
                                          {"name":"Duration","value":"12.3 s","inline":true}])json");
  EXPECT_EQ(e["fields"], fields);
  EXPECT_EQ(e["footer"]["text"],
            "message 1f3c9a2e-0000-4000-8000-000000000001 \u00B7 scheduled 2026-03-08T07:00:00Z");
}

TEST(DiscordPayloadTest, ColourPerStatus) {
  const std::vector<std::pair<TaskStatus, int>> cases = {{TaskStatus::kSuccess, 0x2EB886},
                                                         {TaskStatus::kFailure, 0xA30200},
                                                         {TaskStatus::kTimeout, 0xDAA038},
                                                         {TaskStatus::kInvalid, 0xE01E5A}};
  for (const auto& [status, color] : cases) {
    const json p = Parse(BuildDiscordPayload(Result(status), {}));
    EXPECT_EQ(p["embeds"][0]["color"], color) << TaskStatusName(status);
    EXPECT_THAT(p["embeds"][0]["title"].get<std::string>(),
                EndsWith(std::string(": ") + TaskStatusName(status)));
  }
}

TEST(DiscordPayloadTest, ConfiguredMentionsOnFailuresOnly) {
  DiscordOptions options;
  options.mention_users = {"123456789012345678",   "42", "abc", "<@1>", "123456789012345678",
                           "123456789012345678901"};
  options.mention_roles = {"987654321", "@everyone"};
  for (TaskStatus status : {TaskStatus::kFailure, TaskStatus::kTimeout, TaskStatus::kInvalid}) {
    SCOPED_TRACE(TaskStatusName(status));
    const json p = Parse(BuildDiscordPayload(Result(status), options));
    ExpectDiscordWithinLimits(p);
    EXPECT_EQ(p["content"], "<@123456789012345678> <@42> <@&987654321>");
    EXPECT_EQ(p["allowed_mentions"],
              json::parse(R"({"parse":[],"users":["123456789012345678","42"],"roles":["987654321"]})"));
  }
  const json ok = Parse(BuildDiscordPayload(Result(TaskStatus::kSuccess), options));
  EXPECT_EQ(ok["content"], "");
  EXPECT_EQ(ok["allowed_mentions"], json::parse(R"({"parse":[]})"));
}

TEST(DiscordPayloadTest, TextFromTheTaskIsInertAndNotEscaped) {
  TaskResult r = Result(TaskStatus::kFailure);
  r.job = "@everyone";
  r.output = "@everyone <@123> <@&456> @here **bold** & <b>";
  r.error = "<@789> broke it";
  const json p = Parse(BuildDiscordPayload(r, {}));
  ExpectDiscordWithinLimits(p);
  EXPECT_EQ(p["content"], "");  // the only text that could ping is empty...
  EXPECT_EQ(p["allowed_mentions"], json::parse(R"({"parse":[]})"));  // ...and nothing may be parsed anyway
  const std::string description = p["embeds"][0]["description"];
  EXPECT_THAT(description, HasSubstr("@everyone <@123> <@&456> @here **bold** & <b>"));
  EXPECT_THAT(description, HasSubstr("**Error:** <@789> broke it"));
  EXPECT_EQ(p["embeds"][0]["title"], "\u274C @everyone: failure");
}

TEST(DiscordPayloadTest, OutputCannotEscapeItsCodeBlock) {
  TaskResult r = Result(TaskStatus::kFailure);
  r.output = "```\n# Heading outside?\n```\n````";
  const json p = Parse(BuildDiscordPayload(r, {}));
  EXPECT_EQ(Count(p["embeds"][0]["description"].get<std::string>(), "```"), 2u);
}

TEST(DiscordPayloadTest, EveryLimitHoldsForHugeInput) {
  TaskResult r = Hostile();
  DiscordOptions options;
  options.username = Repeat("\xC3\xA9", 300);
  for (int i = 0; i < 500; ++i) {
    options.mention_users.push_back(std::to_string(100000000000000000LL + i));
    options.mention_roles.push_back(std::to_string(200000000000000000LL + i));
  }
  const std::string payload = BuildDiscordPayload(r, options);
  const json p = Parse(payload);
  const std::size_t total = ExpectDiscordWithinLimits(p);
  EXPECT_GT(total, 4000u);  // uses the room it has
  EXPECT_EQ(Chars(p["username"].get<std::string>()), 80u);
  EXPECT_GT(Chars(p["content"].get<std::string>()), 1900u);
  const json& allowed = p["allowed_mentions"];
  // Exactly the ids that made it into content, no more.
  std::size_t mentioned =
      allowed.value("users", json::array()).size() + allowed.value("roles", json::array()).size();
  EXPECT_EQ(Count(p["content"].get<std::string>(), "<@"), mentioned);
  const std::string title = p["embeds"][0]["title"];
  EXPECT_THAT(title, HasSubstr(std::string(kTruncatedHeadMarker) + ": failure"));  // the job was cut
  const std::string description = p["embeds"][0]["description"];
  EXPECT_GE(Chars(description), 4000u);
  // The output shrank first: the error (cut at 1000) and the task (cut at 500) are whole.
  EXPECT_THAT(description, HasSubstr("**Error:** <!channel> failed & <@&789> @everyone eee"));
  EXPECT_THAT(description, HasSubstr(std::string(kTruncatedHeadMarker) + "\n**Task:**"));
  EXPECT_THAT(description, HasSubstr(std::string(kTruncatedTailMarker)));
  EXPECT_THAT(description, EndsWith("END-MARK\n```"));
  EXPECT_LT(payload.size(), 64u * 1024);
}

TEST(DiscordPayloadTest, MultiByteTitlesAndEmojiAtEveryBoundary) {
  // 300 multi-byte characters in the title; a 4-byte emoji lands on the cut whatever the size.
  for (std::string_view ch : {std::string_view("\xC3\xA9"), std::string_view("\xE2\x82\xAC"), kGrin}) {
    for (std::size_t n : {240u, 241u, 242u, 243u, 244u, 300u}) {
      TaskResult r = Result(TaskStatus::kFailure);
      r.job = Repeat(ch, n);
      r.output = Repeat(ch, 100000);
      const json p = Parse(BuildDiscordPayload(r, {.templates = {.title = "{job}{job}", .body = ""}}));
      ExpectDiscordWithinLimits(p);
      EXPECT_TRUE(IsValidUtf8(p["embeds"][0]["title"].get<std::string>()));
    }
  }
}

TEST(DiscordPayloadTest, EmptyPartsAreLeftOut) {
  TaskResult r = Result(TaskStatus::kSuccess);
  r.output = "";
  r.task = "";
  r.message_id = "";
  r.receive_count = 0;
  r.scheduled_at = {};
  r.finished_at = {};
  DiscordOptions options;
  options.templates.body = "{error}";
  options.username = "  ";
  const json p = Parse(BuildDiscordPayload(r, options));
  ExpectDiscordWithinLimits(p);
  const json& e = p["embeds"][0];
  EXPECT_FALSE(e.contains("description"));
  EXPECT_FALSE(e.contains("footer"));
  EXPECT_FALSE(e.contains("timestamp"));
  EXPECT_FALSE(p.contains("username"));
  EXPECT_EQ(e["fields"].size(), 2u);  // no Attempt 0
  // The default body with nothing to show is empty too.
  const json q = Parse(BuildDiscordPayload(r, {}));
  EXPECT_FALSE(q["embeds"][0].contains("description"));
}

TEST(DiscordPayloadTest, UsernameAndCustomTemplates) {
  TaskResult r = Result(TaskStatus::kInvalid);
  DiscordOptions options;
  options.username = " taskpipe \xF0\x9F\xA4\x96 ";
  options.templates = {.title = "{job} #{attempt}", .body = "**{status}** in {duration}\n{output}"};
  const json p = Parse(BuildDiscordPayload(r, options));
  ExpectDiscordWithinLimits(p);
  EXPECT_EQ(p["username"], "taskpipe \xF0\x9F\xA4\x96");
  EXPECT_EQ(p["embeds"][0]["title"], "nightly-report #3");
  EXPECT_EQ(p["embeds"][0]["description"], "**invalid** in 12.3 s\nline 1\nline 2");
}

TEST(DiscordPayloadTest, RandomGarbageNeverBreaksThePayload) {
  std::mt19937 rng(4242);
  std::uniform_int_distribution<int> byte(0, 255), len(0, 4000);
  auto junk = [&] {
    std::string s(static_cast<std::size_t>(len(rng)), '\0');
    for (char& c : s) c = static_cast<char>(byte(rng));
    return s;
  };
  for (int round = 0; round < 60; ++round) {
    TaskResult r;
    r.job = junk();
    r.task = junk();
    r.message_id = junk();
    r.output = junk() + junk() + junk();
    r.error = junk();
    r.status = static_cast<TaskStatus>(round % 4);
    SCOPED_TRACE(round);
    ExpectDiscordWithinLimits(Parse(BuildDiscordPayload(r, {.templates = {.title = junk(), .body = junk()},
                                                            .mention_users = {junk()},
                                                            .mention_roles = {},
                                                            .username = junk()})));
  }
}

// ----- DiscordRequestUrl -----------------------------------------------------------------------

TEST(DiscordRequestUrlTest, GoodShapes) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"https://discord.com/api/webhooks/123456789/tok-EN_x",
       "https://discord.com/api/v10/webhooks/123456789/tok-EN_x?wait=true"},
      {"https://discord.com/api/v9/webhooks/1/t", "https://discord.com/api/v10/webhooks/1/t?wait=true"},
      {"https://discord.com/api/v10/webhooks/1/t", "https://discord.com/api/v10/webhooks/1/t?wait=true"},
      {"https://discordapp.com/api/webhooks/1/t/", "https://discordapp.com/api/v10/webhooks/1/t?wait=true"},
      {"https://ptb.discord.com/api/webhooks/1/t?thread_id=456",
       "https://ptb.discord.com/api/v10/webhooks/1/t?thread_id=456&wait=true"},
      {"https://discord.com/api/webhooks/1/t?wait=false&thread_id=456&",
       "https://discord.com/api/v10/webhooks/1/t?thread_id=456&wait=true"},
      {"https://discord.com/api/webhooks/1/t?", "https://discord.com/api/v10/webhooks/1/t?wait=true"},
      {"http://127.0.0.1:8080/api/webhooks/1/t", "http://127.0.0.1:8080/api/v10/webhooks/1/t?wait=true"},
      {"HTTPS://discord.com/api/webhooks/1/t#fragment", "HTTPS://discord.com/api/v10/webhooks/1/t?wait=true"},
  };
  for (const auto& [in, want] : cases) {
    const StatusOr<std::string> got = DiscordRequestUrl(in);
    ASSERT_TRUE(got.ok()) << in << ": " << got.status().ToString();
    EXPECT_EQ(*got, want) << in;
  }
}

TEST(DiscordRequestUrlTest, BadShapesSayWhatIsExpectedWithoutTheCredential) {
  const std::string id = "987654321";
  const std::string token = "SeCrEtToKeN42";
  const std::string base = "https://discord.com/api/webhooks/" + id + "/" + token;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "is empty"},
      {"discord.com/api/webhooks/" + id + "/" + token, "must start with https://"},
      {"ftp://discord.com/api/webhooks/" + id + "/" + token, "must start with https://"},
      {"https:///api/webhooks/" + id + "/" + token, "has no host"},
      {"https://user:pw@discord.com/api/webhooks/" + id + "/" + token, "user info"},
      {"https://discord.com/api/webhooks/" + id, "path"},
      {"https://discord.com/api/webhooks/" + id + "/", "path"},
      {"https://discord.com/webhooks/" + id + "/" + token, "path"},
      {"https://discord.com/api/vX/webhooks/" + id + "/" + token, "path"},
      {base + "/slack", "path"},
      {base + "/github", "path"},
      {"https://discord.com/api/webhooks/abc" + id + "/" + token, "webhook id"},
      {"https://discord.com/api/webhooks/" + id + "/" + token + "%2F", "webhook token"},
      {"https://discord.com/api/webhooks/" + id + "/" + token + ".x", "webhook token"},
      {base + " ", "whitespace"},
      {" " + base, "whitespace"},
      {base + "\n", "whitespace"},
  };
  for (const auto& [in, what] : cases) {
    SCOPED_TRACE(what);
    const StatusOr<std::string> got = DiscordRequestUrl(in);
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
    const std::string message = got.status().message();
    EXPECT_THAT(message, HasSubstr(what));
    EXPECT_THAT(message, HasSubstr("expected https://discord.com/api/webhooks/<id>/<token>"));
    EXPECT_THAT(message, Not(HasSubstr(token)));
    EXPECT_THAT(message, Not(HasSubstr(id)));
  }
}

// ----- ClassifyDiscordResponse ---------------------------------------------------------------------

TEST(DiscordClassifyTest, Table) {
  const std::string limited =
      R"({"message": "You are being rate limited.", "retry_after": 0.64, "global": false})";
  const std::string global =
      R"({"message": "You are being rate limited.", "retry_after": 12.5, "global": true, "code": 0})";
  const std::string form =
      R"({"code": 50035, "errors": {"embeds": {"0": {"description": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 4096 or fewer in length."}]}}}}, "message": "Invalid Form Body"})";
  const std::string cloudflare =
      "<!DOCTYPE html>\n<html><head><title>Access denied | discord.com used Cloudflare</title>";
  const std::vector<ReplyCase> cases = {
      {"204", 204, {}, "", Kind::kDelivered, 0ms, false, ""},
      {"200 with the message", 200, {}, R"({"id":"1","content":""})", Kind::kDelivered, 0ms, false, ""},
      {"200 malformed body", 200, {}, "{not json", Kind::kDelivered, 0ms, false, ""},
      {"200 bucket empty",
       200,
       {{"X-RateLimit-Remaining", "0"}, {"X-RateLimit-Reset-After", "0.640"}},
       "{}",
       Kind::kDelivered,
       640ms,
       false,
       ""},
      {"200 bucket not empty",
       200,
       {{"X-RateLimit-Remaining", "4"}, {"X-RateLimit-Reset-After", "0.640"}},
       "{}",
       Kind::kDelivered,
       0ms,
       false,
       ""},
      {"200 bucket empty, garbage reset",
       200,
       {{"x-ratelimit-remaining", "0"}, {"x-ratelimit-reset-after", "later"}},
       "",
       Kind::kDelivered,
       0ms,
       false,
       ""},
      {"429 body",
       429,
       {{"Retry-After", "1"}, {"X-RateLimit-Scope", "user"}},
       limited,
       Kind::kRateLimited,
       640ms,
       false,
       "Discord answered 429 (retry after 0.64 s)"},
      {"429 global body",
       429,
       {{"X-RateLimit-Global", "true"}, {"X-RateLimit-Scope", "global"}},
       global,
       Kind::kRateLimited,
       12500ms,
       true,
       "retry after 12.5 s, global"},
      {"429 global from header only",
       429,
       {{"X-RateLimit-Global", "True"}, {"Retry-After", "2"}},
       "",
       Kind::kRateLimited,
       2000ms,
       true,
       "global"},
      {"429 global from scope only",
       429,
       {{"X-RateLimit-Scope", "global"}, {"X-RateLimit-Reset-After", "3"}},
       "",
       Kind::kRateLimited,
       3000ms,
       true,
       "global"},
      {"429 shared scope is not global",
       429,
       {{"X-RateLimit-Scope", "shared"}, {"X-RateLimit-Reset-After", "1.5"}},
       "",
       Kind::kRateLimited,
       1500ms,
       false,
       "1.5 s"},
      {"429 reset-after before retry-after",
       429,
       {{"Retry-After", "9"}, {"X-RateLimit-Reset-After", "2.25"}},
       "",
       Kind::kRateLimited,
       2250ms,
       false,
       "2.25 s"},
      {"429 cloudflare html",
       429,
       {{"Retry-After", "7"}},
       cloudflare,
       Kind::kRateLimited,
       7000ms,
       false,
       "429"},
      {"429 malformed json, no headers",
       429,
       {},
       R"({"retry_after": )",
       Kind::kRateLimited,
       1000ms,
       false,
       "retry after 1 s"},
      {"429 retry_after not a number",
       429,
       {{"Retry-After", "0.5"}},
       R"({"retry_after": "soon"})",
       Kind::kRateLimited,
       500ms,
       false,
       "0.5 s"},
      {"429 negative retry_after",
       429,
       {},
       R"({"retry_after": -4})",
       Kind::kRateLimited,
       1000ms,
       false,
       "429"},
      {"429 garbage everywhere",
       429,
       {{"Retry-After", "x"}, {"X-RateLimit-Reset-After", "y"}},
       "[]",
       Kind::kRateLimited,
       1000ms,
       false,
       "1 s"},
      {"unknown webhook",
       404,
       {},
       R"({"message": "Unknown Webhook", "code": 10015})",
       Kind::kDead,
       0ms,
       false,
       "Discord answered 404 (code 10015 \"Unknown Webhook\")"},
      {"invalid token",
       401,
       {},
       R"({"message": "Invalid Webhook Token", "code": 50027})",
       Kind::kDead,
       0ms,
       false,
       "code 50027"},
      {"10015 on a 400",
       400,
       {},
       R"({"message": "Unknown Webhook", "code": 10015})",
       Kind::kDead,
       0ms,
       false,
       "10015"},
      {"403",
       403,
       {},
       R"({"message": "Missing Access", "code": 50001})",
       Kind::kDead,
       0ms,
       false,
       "Missing Access"},
      {"404 html",
       404,
       {},
       "<html>not found</html>",
       Kind::kDead,
       0ms,
       false,
       "Discord answered 404 \"<html>not found</html>\""},
      {"invalid form body",
       400,
       {},
       form,
       Kind::kRejected,
       0ms,
       false,
       "Discord answered 400 (code 50035 \"Invalid Form Body\") errors: {\"embeds\""},
      {"400 malformed json",
       400,
       {},
       "{\"code\": 50035, ",
       Kind::kRejected,
       0ms,
       false,
       "Discord answered 400"},
      {"400 bucket empty",
       400,
       {{"X-RateLimit-Remaining", "0"}, {"X-RateLimit-Reset-After", "1"}},
       R"({"code": 50006, "message": "Cannot send an empty message"})",
       Kind::kRejected,
       1000ms,
       false,
       "50006"},
      {"413", 413, {}, "", Kind::kRejected, 0ms, false, "Discord answered 413"},
      {"410", 410, {}, "", Kind::kDead, 0ms, false, "Discord answered 410"},
      {"408", 408, {}, "", Kind::kRetry, 0ms, false, "408"},
      {"500",
       500,
       {},
       R"({"message": "500: Internal Server Error", "code": 0})",
       Kind::kRetry,
       0ms,
       false,
       "Internal Server Error"},
      {"502 cloudflare",
       502,
       {},
       cloudflare,
       Kind::kRetry,
       0ms,
       false,
       "Discord answered 502 \"<!DOCTYPE html>"},
      {"503 bucket empty",
       503,
       {{"X-RateLimit-Remaining", "0"}, {"X-RateLimit-Reset-After", "0.5"}},
       "",
       Kind::kRetry,
       500ms,
       false,
       "503"},
      {"301", 301, {}, "", Kind::kRetry, 0ms, false, "301"},
  };
  for (const ReplyCase& c : cases) {
    SCOPED_TRACE(c.name);
    ExpectVerdict(ClassifyDiscordResponse(Reply(c)), c);
  }
}

TEST(DiscordClassifyTest, ErrorNeverQuotesAWebhookToken) {
  HttpResponse response{
      .status = 400,
      .headers = {},
      .body =
          R"({"message": "bad https://discord.com/api/webhooks/123456789/SECRETtokenSECRET", "code": 1})"};
  DeliveryVerdict v = ClassifyDiscordResponse(response);
  EXPECT_EQ(v.kind, Kind::kRejected);
  EXPECT_THAT(v.error, Not(HasSubstr("SECRETtokenSECRET")));
  response.body = "bad https://discord.com/api/webhooks/123456789/SECRETtokenSECRET";
  v = ClassifyDiscordResponse(response);
  EXPECT_THAT(v.error, Not(HasSubstr("SECRETtokenSECRET")));
  EXPECT_THAT(v.error, HasSubstr("Discord answered 400"));
}

TEST(DiscordClassifyTest, HugeAndBrokenBodiesStayOneShortValidLine) {
  HttpResponse response{.status = 400,
                        .headers = {},
                        .body = "{\"message\": \"" + std::string(100000, 'a') + "\xC0\", \"code\": 1}"};
  DeliveryVerdict v = ClassifyDiscordResponse(response);
  EXPECT_EQ(v.kind, Kind::kRejected);
  EXPECT_TRUE(IsValidUtf8(v.error));
  EXPECT_LE(v.error.size(), 300u);
  response.body = std::string(100000, '\n') + "\xFF";
  v = ClassifyDiscordResponse(response);
  EXPECT_TRUE(IsValidUtf8(v.error));
  EXPECT_EQ(v.error.find('\n'), std::string::npos);
}

}  // namespace
}  // namespace taskpipe
