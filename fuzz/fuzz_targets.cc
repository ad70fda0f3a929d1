#include "fuzz/fuzz_targets.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "aws/sqs_wire.h"
#include "common/status.h"
#include "common/task_result.h"
#include "common/time_zone.h"
#include "config/config_json.h"
#include "config/tasks_file.h"
#include "net/http_client.h"
#include "notify/dispatcher.h"
#include "notify/webhook_format.h"
#include "producer/envelope.h"
#include "producer/schedule.h"
#include "queue/validate.h"

namespace taskpipe::fuzz {
namespace {

using nlohmann::json;
using std::chrono::days;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::nanoseconds;
using std::chrono::seconds;
using std::chrono::sys_days;
using std::chrono::system_clock;
using time_point = system_clock::time_point;

// ---- harness helpers ---------------------------------------------------------------------------

// A broken invariant: say which (libFuzzer keeps the input, a test log shows the line) and stop
// hard, so that neither libFuzzer nor a gtest run can mistake it for a pass.
[[noreturn]] void Fail(const char* what, int line) {
  std::fprintf(stderr, "fuzz_targets.cc:%d: invariant violated: %s\n", line, what);
  std::fflush(stderr);
  __builtin_trap();
}
#define FUZZ_CHECK(cond)                \
  do {                                  \
    if (!(cond)) Fail(#cond, __LINE__); \
  } while (false)

// Reads an input front to back: control bytes first, then the text. Past the end, bytes are 0.
class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size)
      : text_(reinterpret_cast<const char*>(data), size) {}  // bytes as chars: same size and alignment

  std::uint8_t Byte() {
    if (text_.empty()) return 0;
    const auto b = static_cast<std::uint8_t>(text_.front());
    text_.remove_prefix(1);
    return b;
  }
  // An index below `n` (n > 0).
  std::size_t Pick(std::size_t n) { return Byte() % n; }
  std::string_view Rest() const { return text_; }

 private:
  std::string_view text_;
};

// The first line of *text (without its '\n'), removed from *text.
std::string_view TakeLine(std::string_view* text) {
  const std::size_t nl = text->find('\n');
  const std::string_view line = text->substr(0, nl);
  text->remove_prefix(nl == std::string_view::npos ? text->size() : nl + 1);
  return line;
}

// Strict UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF), written here
// rather than borrowed from the library under test.
bool IsStrictUtf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (s.size() - i <= n) return false;  // truncated
    for (std::size_t k = 1; k <= n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      const unsigned char min = k == 1 ? lo : 0x80, max = k == 1 ? hi : 0xBF;
      if (d < min || d > max) return false;
    }
    i += n + 1;
  }
  return true;
}

// Code points of valid UTF-8: the bytes that are not continuation bytes.
std::size_t CodePoints(std::string_view s) {
  return static_cast<std::size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

bool StartsWith(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }
bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}
bool Contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

// The member `key` of `object` when it is a string, else nullptr.
const std::string* StringField(const json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  const auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get_ptr<const std::string*>() : nullptr;
}

time_point At(int y, unsigned m, unsigned d, int h = 0, int mi = 0, int s = 0, nanoseconds frac = {}) {
  return time_point{sys_days{std::chrono::year{y} / std::chrono::month{m} / std::chrono::day{d}}} + hours{h} +
         minutes{mi} + seconds{s} + std::chrono::duration_cast<system_clock::duration>(frac);
}

// ---- schedule ----------------------------------------------------------------------------------

constexpr std::array<const char*, 16> kZones = {
    "UTC",
    "America/New_York",
    "Europe/London",
    "Europe/Dublin",        // negative daylight saving time in the tz database
    "Australia/Lord_Howe",  // 30-minute daylight saving shift
    "Asia/Kathmandu",       // +05:45
    "Pacific/Chatham",      // +12:45 / +13:45
    "America/Santiago",     // transitions at midnight
    "Africa/Casablanca",    // daylight saving suspended each Ramadan
    "Antarctica/Troll",     // two-hour shift
    "Pacific/Apia",         // skipped 2011-12-30 altogether
    "Africa/Monrovia",      // -00:44:30 until 1972
    "America/St_Johns",     // -03:30
    "Pacific/Kiritimati",   // +14
    "Etc/GMT+12",
    "Mars/Base",  // unknown: Parse fails
};

// Instants for start, end, created_at and `after`: daylight saving transitions, the ends of the
// supported range (1970-2199) and of the tz database's listed transitions (2037), sub-seconds.
const std::array<time_point, 16>& Instants() {
  static const std::array<time_point, 16> kInstants = {
      At(1970, 1, 1),
      At(2026, 3, 8, 6, 59, 59, std::chrono::milliseconds{500}),  // US spring forward at 07:00Z
      At(2026, 11, 1, 5, 30),                                     // inside the US fall-back hour
      At(2026, 3, 29, 0, 59, 59),                                 // EU spring forward at 01:00Z
      At(2026, 10, 25, 0, 30, 0, nanoseconds{1}),                 // EU fall back at 01:00Z
      At(2024, 2, 29, 12),
      At(2037, 12, 31, 23, 59, 59),
      At(2038, 3, 14, 7),
      At(2099, 6, 15),
      At(2199, 12, 31, 23),
      At(2200, 1, 5),
      At(1969, 12, 31, 12),
      At(1900, 1, 1),
      At(2026, 6, 15, 12, 34, 56, std::chrono::milliseconds{789}),
      At(2011, 12, 29, 10),
      At(2261, 12, 31),
  };
  return kInstants;
}

time_point AfterInstant(std::size_t i) {
  // Two more than Instants(): the extremes of the clock, which Next() accepts like any instant.
  if (i == 16) return time_point::min();
  if (i == 17) return time_point::max();
  return Instants()[i % 16];
}

std::string_view TrimSpace(std::string_view s) {
  constexpr std::string_view kSpace = " \t\n\r\f\v";
  const std::size_t begin = s.find_first_not_of(kSpace);
  if (begin == std::string_view::npos) return {};
  return s.substr(begin, s.find_last_not_of(kSpace) - begin + 1);
}

void CheckNextFrom(const Schedule& schedule, const ScheduleOptions& options, const TimeZone& zone,
                   time_point after) {
  const std::optional<time_point> next = schedule.Next(after);
  // NextN agrees with Next, step by step, and is strictly increasing.
  const std::vector<time_point> several = schedule.NextN(after, 4);
  FUZZ_CHECK(several.size() <= 4);
  FUZZ_CHECK(next.has_value() == !several.empty());
  if (!next) return;
  FUZZ_CHECK(*next > after);
  FUZZ_CHECK(several.front() == *next);
  for (std::size_t i = 1; i < several.size(); ++i) {
    FUZZ_CHECK(several[i] > several[i - 1]);
    FUZZ_CHECK(schedule.Next(several[i - 1]) == several[i]);
  }
  // Nothing fires between `after` and the answer: asking from just before it gives it again.
  FUZZ_CHECK(schedule.Next(*next - system_clock::duration{1}) == *next);

  switch (schedule.kind()) {
    case Schedule::Kind::kRate:
      // anchor + k * period: equal steps.
      for (std::size_t i = 2; i < several.size(); ++i) {
        FUZZ_CHECK(several[i] - several[i - 1] == several[1] - several[0]);
      }
      break;
    case Schedule::Kind::kCron:
      for (time_point t : several) {
        // Whole wall-clock minutes in the schedule's zone.
        const auto whole = std::chrono::floor<seconds>(t);
        FUZZ_CHECK(whole == t);
        const std::chrono::local_seconds wall =
            zone.ToLocal(std::chrono::sys_seconds{whole.time_since_epoch()});
        FUZZ_CHECK(std::chrono::floor<minutes>(wall) == wall);
      }
      break;
    case Schedule::Kind::kAt:
      FUZZ_CHECK(several.size() == 1);  // once
      break;
  }
  if (schedule.kind() != Schedule::Kind::kAt) {
    for (time_point t : several) {
      if (options.start) FUZZ_CHECK(t >= *options.start);
      if (options.end) FUZZ_CHECK(t <= *options.end);
    }
  }
}

}  // namespace

int FuzzSchedule(const std::uint8_t* data, std::size_t size) {
  Input in(data, size);
  ScheduleOptions options;
  options.timezone = kZones[in.Pick(kZones.size())];
  const std::uint8_t flags = in.Byte();
  if (flags & 1) options.start = Instants()[in.Pick(16)];
  if (flags & 2) options.end = Instants()[in.Pick(16)];
  if (flags & 4) options.created_at = Instants()[in.Pick(16)];
  const std::size_t after_index = (flags >> 3) % 18;
  const std::string_view expression = in.Rest();

  const StatusOr<Schedule> parsed = Schedule::Parse(expression, options);
  if (!parsed.ok()) {
    FUZZ_CHECK(parsed.status().code() == StatusCode::kInvalidArgument);
    FUZZ_CHECK(!parsed.status().message().empty());
    return 0;
  }
  const Schedule& schedule = *parsed;
  FUZZ_CHECK(schedule.expression() == TrimSpace(expression));
  FUZZ_CHECK(schedule.timezone() == options.timezone);
  switch (schedule.kind()) {
    case Schedule::Kind::kRate:
      FUZZ_CHECK(StartsWith(schedule.expression(), "rate("));
      break;
    case Schedule::Kind::kCron:
      FUZZ_CHECK(StartsWith(schedule.expression(), "cron("));
      break;
    case Schedule::Kind::kAt:
      FUZZ_CHECK(StartsWith(schedule.expression(), "at("));
      break;
  }
  if (schedule.kind() != Schedule::Kind::kAt && options.start && options.end) {
    FUZZ_CHECK(*options.start <= *options.end);  // else Parse fails
  }
  const StatusOr<TimeZone> zone = TimeZone::Locate(options.timezone);
  FUZZ_CHECK(zone.ok());  // Parse found it

  CheckNextFrom(schedule, options, *zone, AfterInstant(after_index));
  CheckNextFrom(schedule, options, *zone, Instants()[13]);
  return 0;
}

// ---- config ------------------------------------------------------------------------------------

namespace {

void CheckTask(const json& task) { FUZZ_CHECK(task.is_string() || task.is_object()); }

}  // namespace

int FuzzConfig(const std::uint8_t* data, std::size_t size) {
  Input in(data, size);
  const std::uint8_t flags = in.Byte();
  const std::string_view rest = in.Rest();
  const std::size_t nul = rest.find('\0');
  const std::string_view config_text = rest.substr(0, nul);
  const std::optional<std::string_view> tasks_text =
      nul == std::string_view::npos ? std::nullopt : std::optional<std::string_view>(rest.substr(nul + 1));

  LoadOptions options;
  // Never the process environment: the same input must give the same result everywhere.
  const bool with_env = (flags & 4) != 0;
  options.getenv = [with_env](std::string_view name) -> std::optional<std::string> {
    if (!with_env) return std::nullopt;
    static const std::map<std::string, std::string, std::less<>> kEnv = {
        {"HOME", "/home/fuzz"},
        {"EMPTY", ""},
        {"SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/xyzSecretToken123"},
        {"API_TOKEN", "tok-0123456789"},
        {"NESTED", "${HOME}"},
        {"WORKERS", "4"},
    };
    const auto it = kEnv.find(name);
    if (it == kEnv.end()) return std::nullopt;
    return it->second;
  };
  if (flags & 1) {
    // As taskpipe's own loader (app/commands.cc) checks schedules.
    options.validate_schedule = [](const JobConfig& job) -> std::optional<std::string> {
      ScheduleOptions schedule_options;
      schedule_options.timezone = job.timezone;
      const StatusOr<Schedule> schedule = Schedule::Parse(job.schedule, schedule_options);
      if (schedule.ok()) return std::nullopt;
      return schedule.status().message();
    };
  }
  if (flags & 2) options.validate_notify_target = CheckNotifyTarget;
  options.read_file = [tasks_text](const std::string& path) -> StatusOr<std::string> {
    if (!tasks_text) {
      return InvalidArgumentError("cannot read tasks file \"" + path + "\": No such file or directory");
    }
    return std::string(*tasks_text);
  };
  const std::string source_path = (flags & 8) ? "/etc/taskpipe/taskpipe.json" : "";

  Config config;
  const std::vector<ConfigProblem> problems = ParseConfigProblems(config_text, options, source_path, &config);
  const StatusOr<Config> loaded = ParseConfig(config_text, options, source_path);
  // ParseConfig fails exactly when ParseConfigProblems reports problems, with the status
  // ConfigProblemsToStatus makes of them.
  FUZZ_CHECK(loaded.ok() == problems.empty());
  if (!loaded.ok()) {
    FUZZ_CHECK(loaded.status().code() == StatusCode::kInvalidArgument);
    FUZZ_CHECK(loaded.status() == ConfigProblemsToStatus(problems, source_path));
  } else {
    FUZZ_CHECK(ConfigProblemsToStatus(problems, source_path).ok());
    FUZZ_CHECK(loaded->source_path == source_path);
    FUZZ_CHECK(loaded->jobs.size() == config.jobs.size());
    for (const JobConfig& job : loaded->jobs) {
      FUZZ_CHECK(!job.tasks.empty());  // "never empty after a successful load"
      for (const json& task : job.tasks) CheckTask(task);
    }
  }

  const StatusOr<std::vector<json>> tasks = ParseTasksText(tasks_text.value_or(config_text), "tasks.txt");
  if (tasks.ok()) {
    for (const json& task : *tasks) CheckTask(task);
  } else {
    FUZZ_CHECK(tasks.status().code() == StatusCode::kInvalidArgument);
    FUZZ_CHECK(StartsWith(tasks.status().message(), "tasks.txt"));
  }
  return 0;
}

// ---- SQS ---------------------------------------------------------------------------------------

namespace {

constexpr std::array<int, 16> kSqsStatuses = {200, 200, 200, 200, 400, 403, 404, 413,
                                              429, 500, 503, 204, 301, 100, 0,   999};

bool Is2xx(int status) { return status >= 200 && status < 300; }

bool LooksLikeHtml(std::string_view body) {
  const std::size_t start = body.find_first_not_of(" \t\r\n");
  if (start == std::string_view::npos) return false;
  std::string head(body.substr(start, 15));
  std::transform(head.begin(), head.end(), head.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return StartsWith(head, "<!doctype html") || StartsWith(head, "<html");
}

// What every Parse*Response promises whatever the input: success only for a 2xx reply that is not
// an HTML page, and an error is one of the codes the file comment names (never kInternal, which
// is what an OK status without a value turns into).
void CheckOutcome(const Status& status, const HttpResponse& response) {
  if (status.ok()) {
    FUZZ_CHECK(Is2xx(response.status));
    FUZZ_CHECK(!LooksLikeHtml(response.body));
  } else {
    FUZZ_CHECK(status.code() != StatusCode::kInternal);
    FUZZ_CHECK(!status.message().empty());
  }
}

template <typename T>
void CheckBatch(const BatchResult<T>& result, const std::vector<std::string>& sent_ids) {
  // Every sent id ends up in exactly one of the lists.
  std::vector<std::string> ids;
  for (const auto& success : result.successful) ids.push_back(success.id);
  for (const BatchEntryFailure& failure : result.failed) {
    ids.push_back(failure.id);
    FUZZ_CHECK(!failure.status.ok());
  }
  std::vector<std::string> expected = sent_ids;
  std::sort(ids.begin(), ids.end());
  std::sort(expected.begin(), expected.end());
  FUZZ_CHECK(ids == expected);
}

MessageAttribute Attribute(std::string type, std::string string_value, std::string binary_value) {
  MessageAttribute a;
  a.data_type = std::move(type);
  a.string_value = std::move(string_value);
  a.binary_value = std::move(binary_value);
  return a;
}

int FuzzSqs(SqsProtocol protocol, const std::uint8_t* data, std::size_t size) {
  Input in(data, size);
  const std::size_t parser = in.Pick(9);
  HttpResponse response;
  response.status = kSqsStatuses[in.Pick(kSqsStatuses.size())];
  const std::uint8_t headers = in.Byte();
  std::string_view body = in.Rest();
  if (headers & 1) response.headers.emplace_back("Content-Type", "text/html; charset=utf-8");
  if (headers & 2) {
    response.headers.emplace_back("Content-Type",
                                  protocol == SqsProtocol::kJson ? "application/x-amz-json-1.0" : "text/xml");
  }
  if (headers & 4) response.headers.emplace_back("x-amzn-query-error", std::string(TakeLine(&body)));
  response.body = std::string(body);

  // The message the moto replies of tests/aws/sqs_wire_test.cc were computed for, so that seeds
  // get past the MD5 checks.
  OutgoingMessage sent;
  sent.body = "hi";
  sent.attributes["a"] = Attribute("String", "x", "");
  sent.attributes["b"] = Attribute("Binary", "", std::string("\x00\x01", 2));
  std::vector<SendBatchEntry> batch(3);
  const std::array<std::pair<const char*, const char*>, 3> kBatch = {{{"a", "x"}, {"b", "y"}, {"c", "z"}}};
  for (std::size_t i = 0; i < kBatch.size(); ++i) {
    batch[i].id = kBatch[i].first;
    batch[i].message.body = kBatch[i].second;
  }
  const std::vector<std::string> ids = {"a", "b", "c"};

  switch (parser) {
    case 0: {
      const StatusOr<std::vector<ReceivedMessage>> got = ParseReceiveMessageResponse(protocol, response);
      CheckOutcome(got.status(), response);
      if (got.ok()) {
        for (const ReceivedMessage& m : *got) FUZZ_CHECK(m.md5_of_body == Md5OfBody(m.body));
      }
      break;
    }
    case 1: {
      const StatusOr<SendResult> got = ParseSendMessageResponse(protocol, response, sent);
      CheckOutcome(got.status(), response);
      if (got.ok()) FUZZ_CHECK(got->md5_of_body == Md5OfBody(sent.body));
      break;
    }
    case 2: {
      const StatusOr<BatchResult<SendResult>> got = ParseSendMessageBatchResponse(protocol, response, batch);
      CheckOutcome(got.status(), response);
      if (got.ok()) {
        CheckBatch(*got, ids);
        for (const auto& success : got->successful) {
          const auto it = std::find_if(batch.begin(), batch.end(),
                                       [&](const SendBatchEntry& e) { return e.id == success.id; });
          FUZZ_CHECK(it != batch.end());
          FUZZ_CHECK(success.value.md5_of_body == Md5OfBody(it->message.body));
        }
      }
      break;
    }
    case 3:
    case 4: {
      const Status got =
          ParseEmptyResponse(protocol, parser == 3 ? "DeleteMessage" : "ChangeMessageVisibility", response);
      CheckOutcome(got, response);
      break;
    }
    case 5:
    case 6: {
      const StatusOr<BatchResult<Empty>> got = ParseEmptyBatchResponse(
          protocol, parser == 5 ? "DeleteMessageBatch" : "ChangeMessageVisibilityBatch", response, ids);
      CheckOutcome(got.status(), response);
      if (got.ok()) CheckBatch(*got, ids);
      break;
    }
    case 7: {
      const StatusOr<QueueAttributes> got = ParseGetQueueAttributesResponse(protocol, response);
      CheckOutcome(got.status(), response);
      if (got.ok()) {
        FUZZ_CHECK(got->visible >= 0);
        FUZZ_CHECK(got->in_flight >= 0);
        FUZZ_CHECK(got->delayed >= 0);
      }
      break;
    }
    default: {
      const StatusOr<std::string> got = ParseGetQueueUrlResponse(protocol, response);
      CheckOutcome(got.status(), response);
      if (got.ok()) FUZZ_CHECK(!got->empty());
      break;
    }
  }

  // The error mappings, fed with the same bytes.
  std::string_view error_text = response.body;
  const std::string_view code = TakeLine(&error_text);
  const std::string normalized = NormalizeSqsErrorCode(code);
  FUZZ_CHECK(normalized.size() <= code.size() || normalized == "QueueDoesNotExist");
  const Status error = SqsErrorToStatus("Fuzz", code, error_text, response.status);
  FUZZ_CHECK(!error.ok() && error.code() != StatusCode::kInternal);
  FUZZ_CHECK(error.error_name() == normalized);
  const Status http = HttpStatusToStatus(response.status, response.body);
  FUZZ_CHECK(http.ok() == Is2xx(response.status));
  return 0;
}

}  // namespace

int FuzzSqsJson(const std::uint8_t* data, std::size_t size) {
  return FuzzSqs(SqsProtocol::kJson, data, size);
}
int FuzzSqsXml(const std::uint8_t* data, std::size_t size) {
  return FuzzSqs(SqsProtocol::kQuery, data, size);
}

// ---- envelope ----------------------------------------------------------------------------------

int FuzzEnvelope(const std::uint8_t* data, std::size_t size) {
  const std::string_view body = Input(data, size).Rest();
  const StatusOr<Envelope> decoded = DecodeEnvelope(body);
  // The fast path for the common shape gives what the general parser gives, errors included.
  const StatusOr<Envelope> general = internal::DecodeEnvelopeGeneral(body);
  FUZZ_CHECK(decoded.ok() == general.ok());
  FUZZ_CHECK(decoded.ok() ? *decoded == *general : decoded.status().message() == general.status().message());
  if (!decoded.ok()) {
    FUZZ_CHECK(decoded.status().code() == StatusCode::kInvalidArgument);
    FUZZ_CHECK(StartsWith(decoded.status().message(), "not a taskpipe envelope: "));
    return 0;
  }
  const Envelope& envelope = *decoded;
  FUZZ_CHECK(!envelope.job.empty());
  FUZZ_CHECK(envelope.task.is_string() || envelope.task.is_object());

  // Encoding gives a body SQS accepts, which decodes to the same envelope with the times cut to
  // milliseconds.
  const std::string encoded = EncodeEnvelope(envelope);
  FUZZ_CHECK(IsValidMessageText(encoded));
  // The encoder writes the object piece by piece: it is JSON with exactly the four keys.
  const nlohmann::json parsed = nlohmann::json::parse(encoded, nullptr, /*allow_exceptions=*/false);
  FUZZ_CHECK(parsed.is_object() && parsed.size() == 4);
  FUZZ_CHECK(parsed["job"] == envelope.job && parsed["task"] == envelope.task);
  const StatusOr<Envelope> again = DecodeEnvelope(encoded);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->job == envelope.job);
  FUZZ_CHECK(again->task == envelope.task);
  FUZZ_CHECK(again->scheduled_at == std::chrono::floor<milliseconds>(envelope.scheduled_at));
  FUZZ_CHECK(again->fired_at == std::chrono::floor<milliseconds>(envelope.fired_at));
  // Not the same text necessarily: a time with less than a millisecond past the second is written
  // ".000Z" the first time and without a fraction the second. With millisecond times it is stable.
  const StatusOr<Envelope> third = DecodeEnvelope(EncodeEnvelope(*again));
  FUZZ_CHECK(third.ok() && *third == *again);
  return 0;
}

// ---- webhook -----------------------------------------------------------------------------------

namespace {

constexpr std::array<int, 16> kWebhookStatuses = {200, 204, 400, 401, 403, 404, 408, 410,
                                                  413, 429, 500, 502, 503, 301, 100, -1};
constexpr std::array<const char*, 5> kRateHeaders = {"Retry-After", "X-RateLimit-Remaining",
                                                     "X-RateLimit-Reset-After", "X-RateLimit-Global",
                                                     "X-RateLimit-Scope"};
constexpr std::array<std::size_t, 16> kTruncateLimits = {0,  1,  2,  5,   12,  13,   14,   15,
                                                         20, 40, 80, 200, 256, 1000, 3000, 100000};
constexpr std::array<std::int64_t, 9> kDurations = {0,
                                                    850,
                                                    12345,
                                                    245000,
                                                    7380000,
                                                    176400000,
                                                    -5,
                                                    std::numeric_limits<std::int64_t>::max(),
                                                    std::numeric_limits<std::int64_t>::min()};
// Planted in reply bodies: must never come back in a verdict's error.
constexpr std::string_view kSecret = "FuzzSecret7Tok3n";
constexpr std::array<std::string_view, 2> kPlantedUrls = {
    "https://hooks.slack.com/services/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3",
    "https://discord.com/api/webhooks/123456789012345678/FuzzSecret7Tok3nDiscord-abcdefghijklmnopqrstuvwxyz"};

constexpr std::chrono::milliseconds kMaxWait = hours{1};

void CheckVerdict(const DeliveryVerdict& verdict, const HttpResponse& response, bool planted) {
  FUZZ_CHECK(verdict.retry_after >= milliseconds{0});
  FUZZ_CHECK(verdict.retry_after <= kMaxWait);
  FUZZ_CHECK(IsStrictUtf8(verdict.error));
  FUZZ_CHECK(!Contains(verdict.error, "\n") && !Contains(verdict.error, "\r"));  // one line
  if (planted) FUZZ_CHECK(!Contains(verdict.error, kSecret));
  if (response.status == 429) {
    FUZZ_CHECK(verdict.kind == DeliveryVerdict::Kind::kRateLimited);
  }
  if (response.status == 401 || response.status == 403 || response.status == 404 || response.status == 410) {
    FUZZ_CHECK(verdict.kind == DeliveryVerdict::Kind::kDead);
  }
  if (verdict.kind == DeliveryVerdict::Kind::kRateLimited) FUZZ_CHECK(response.status == 429);
}

void CheckSanitized(std::string_view in, const std::string& out) {
  FUZZ_CHECK(IsStrictUtf8(out));
  for (char c : out) {
    const auto u = static_cast<unsigned char>(c);
    FUZZ_CHECK(u >= 0x20 || c == '\n' || c == '\t');  // C0 controls, CR and ESC dropped
  }
  FUZZ_CHECK(SanitizeUtf8(out) == out);  // idempotent
  if (IsStrictUtf8(in) && std::none_of(in.begin(), in.end(), [](char c) {
        return static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t';
      })) {
    FUZZ_CHECK(out == in);  // nothing to repair
  }
  FUZZ_CHECK(Utf8Length(out) == CodePoints(out));
}

void CheckTruncated(std::string_view in, std::size_t max_chars, bool keep_tail) {
  const std::string out = TruncateUtf8(in, max_chars, keep_tail);
  FUZZ_CHECK(IsStrictUtf8(out));
  const std::size_t chars = CodePoints(in);
  if (chars <= max_chars) {
    FUZZ_CHECK(out == in);
    return;
  }
  FUZZ_CHECK(CodePoints(out) <= max_chars);
  std::string_view kept = out;
  if (keep_tail) {
    if (StartsWith(kept, kTruncatedTailMarker)) kept.remove_prefix(kTruncatedTailMarker.size());
    FUZZ_CHECK(EndsWith(in, kept));
  } else {
    if (EndsWith(kept, kTruncatedHeadMarker)) kept.remove_suffix(kTruncatedHeadMarker.size());
    FUZZ_CHECK(StartsWith(in, kept));
  }
  // A marker alone would say nothing: it comes with at least one character of the text.
  if (max_chars > CodePoints(kTruncatedHeadMarker)) {
    FUZZ_CHECK(keep_tail ? StartsWith(out, kTruncatedTailMarker) : EndsWith(out, kTruncatedHeadMarker));
  }
}

bool WithinChars(const std::string* text, std::size_t max_chars) {
  return text == nullptr || CodePoints(*text) <= max_chars;
}

void CheckSlackPayload(const std::string& payload, bool may_mention) {
  const json j = json::parse(payload, nullptr, /*allow_exceptions=*/false);
  FUZZ_CHECK(j.is_object());
  const std::string* text = StringField(j, "text");
  FUZZ_CHECK(text != nullptr);
  FUZZ_CHECK(WithinChars(text, kSlackTextMaxChars));
  std::vector<const std::string*> texts = {text};
  const auto attachments = j.find("attachments");
  FUZZ_CHECK(attachments != j.end() && attachments->is_array() && attachments->size() == 1);
  const json& attachment = attachments->front();
  if (const auto blocks = attachment.find("blocks"); blocks != attachment.end()) {
    FUZZ_CHECK(blocks->is_array() && blocks->size() <= kSlackMaxBlocks);
    for (const json& block : *blocks) {
      const std::string* type = StringField(block, "type");
      FUZZ_CHECK(type != nullptr);
      if (*type == "section") {
        const std::string* section = StringField(block.at("text"), "text");
        FUZZ_CHECK(section != nullptr && WithinChars(section, kSlackSectionTextMaxChars));
        texts.push_back(section);
      } else {
        FUZZ_CHECK(*type == "context");
        for (const json& element : block.at("elements")) {
          const std::string* context = StringField(element, "text");
          FUZZ_CHECK(context != nullptr && WithinChars(context, kSlackContextTextMaxChars));
          texts.push_back(context);
        }
      }
    }
  }
  if (!may_mention) {
    for (const std::string* t : texts) FUZZ_CHECK(!Contains(*t, "<!") && !Contains(*t, "<@"));
  }
}

void CheckDiscordPayload(const std::string& payload, bool may_mention) {
  const json j = json::parse(payload, nullptr, /*allow_exceptions=*/false);
  FUZZ_CHECK(j.is_object());
  const std::string* content = StringField(j, "content");
  FUZZ_CHECK(content != nullptr && WithinChars(content, kDiscordContentMaxChars));
  if (!may_mention) FUZZ_CHECK(content->empty());
  const auto allowed = j.find("allowed_mentions");
  FUZZ_CHECK(allowed != j.end() && allowed->is_object());
  FUZZ_CHECK(allowed->contains("parse") && allowed->at("parse") == json::array());
  for (const char* list : {"users", "roles"}) {
    if (const auto ids = allowed->find(list); ids != allowed->end()) {
      FUZZ_CHECK(may_mention && ids->is_array() && ids->size() <= kDiscordMaxAllowedMentionIds);
      for (const json& id : *ids) FUZZ_CHECK(id.is_string() && IsDiscordSnowflake(id.get<std::string>()));
    }
  }
  const auto embeds = j.find("embeds");
  FUZZ_CHECK(embeds != j.end() && embeds->is_array() && embeds->size() == 1);
  const json& embed = embeds->front();
  std::size_t total = 0;
  const std::string* title = StringField(embed, "title");
  FUZZ_CHECK(WithinChars(title, kDiscordTitleMaxChars));
  if (title) total += CodePoints(*title);
  const std::string* description = StringField(embed, "description");
  FUZZ_CHECK(WithinChars(description, kDiscordDescriptionMaxChars));
  if (description) total += CodePoints(*description);
  if (const auto fields = embed.find("fields"); fields != embed.end()) {
    FUZZ_CHECK(fields->is_array() && fields->size() <= kDiscordMaxFields);
    for (const json& field : *fields) {
      const std::string* name = StringField(field, "name");
      const std::string* value = StringField(field, "value");
      FUZZ_CHECK(name != nullptr && value != nullptr);
      FUZZ_CHECK(WithinChars(name, kDiscordFieldNameMaxChars) &&
                 WithinChars(value, kDiscordFieldValueMaxChars));
      total += CodePoints(*name) + CodePoints(*value);
    }
  }
  if (const auto footer = embed.find("footer"); footer != embed.end()) {
    const std::string* footer_text = StringField(*footer, "text");
    FUZZ_CHECK(footer_text != nullptr && WithinChars(footer_text, kDiscordFooterMaxChars));
    total += CodePoints(*footer_text);
  }
  FUZZ_CHECK(total <= kDiscordEmbedTotalMaxChars);
  FUZZ_CHECK(WithinChars(StringField(j, "username"), kDiscordUsernameMaxChars));
}

}  // namespace

int FuzzWebhook(const std::uint8_t* data, std::size_t size) {
  Input in(data, size);
  HttpResponse response;
  response.status = kWebhookStatuses[in.Pick(kWebhookStatuses.size())];
  const std::uint8_t headers = in.Byte();
  const std::uint8_t options = in.Byte();
  const std::uint8_t extra = in.Byte();
  const std::int64_t duration_ms = kDurations[in.Pick(kDurations.size())];
  const std::size_t plant_at = static_cast<std::size_t>(in.Byte()) << 8 | in.Byte();
  std::string_view rest = in.Rest();

  // The reply.
  for (std::size_t i = 0; i < kRateHeaders.size(); ++i) {
    if (headers & (1u << i)) response.headers.emplace_back(kRateHeaders[i], std::string(TakeLine(&rest)));
  }
  if (headers & 0x20) response.headers.emplace_back("Content-Type", "application/json");
  const bool planted = (options & 0x10) != 0 && !Contains(rest, kSecret);
  response.body = std::string(rest);
  if (planted) {
    response.body.insert(plant_at % (response.body.size() + 1), kPlantedUrls[(options >> 5) & 1]);
  }
  CheckVerdict(ClassifySlackResponse(response), response, planted);
  const DeliveryVerdict discord = ClassifyDiscordResponse(response);
  CheckVerdict(discord, response, planted);
  if (Is2xx(response.status)) FUZZ_CHECK(discord.kind == DeliveryVerdict::Kind::kDelivered);

  // Text helpers.
  const std::string sanitized = SanitizeUtf8(rest);
  CheckSanitized(rest, sanitized);
  const bool keep_tail = (options & 0x08) != 0;
  CheckTruncated(sanitized, kTruncateLimits[extra >> 4], keep_tail);
  const std::string escaped = EscapeSlack(sanitized);
  FUZZ_CHECK(!Contains(escaped, "<") && !Contains(escaped, ">"));
  FUZZ_CHECK(!Contains(DefuseCodeFences(sanitized), "```"));
  FUZZ_CHECK(!FormatDurationForHumans(milliseconds{duration_ms}).empty());

  // Templates and payloads: the lines are a template, then the result's job, task and error; the
  // rest is its output.
  std::string_view lines = rest;
  const std::string_view tmpl = TakeLine(&lines);
  TaskResult r;
  r.job = std::string(TakeLine(&lines));
  r.task = std::string(TakeLine(&lines));
  r.error = std::string(TakeLine(&lines));
  r.output = std::string(lines);
  r.message_id = "9ad23cea-c65a-4262-b421-ecc57a7ebf0a";
  r.receive_count = static_cast<int>(options >> 6) - 1;
  r.status = static_cast<TaskStatus>(options & 3);
  r.will_retry = (options & 4) != 0;
  r.duration = milliseconds{duration_ms};
  if (headers & 0x40) {
    r.scheduled_at = At(2026, 3, 8, 7);
    r.finished_at = At(2026, 3, 8, 7, 0, 12, milliseconds{345});
  }

  const Status valid = ValidateTemplate(tmpl);
  FUZZ_CHECK(valid.ok() || valid.code() == StatusCode::kInvalidArgument);
  std::function<std::string(std::string_view)> escape;
  if (headers & 0x80) escape = [](std::string_view text) { return EscapeSlack(text); };
  const std::string rendered = RenderTemplate(tmpl, r, escape, kTruncateLimits[extra >> 4]);
  // The template is sanitized too (SanitizeUtf8), so the text is always valid UTF-8.
  FUZZ_CHECK(IsStrictUtf8(rendered));
  if (!Contains(tmpl, "{") && !Contains(tmpl, "}")) FUZZ_CHECK(rendered == SanitizeUtf8(tmpl));

  MessageTemplates templates;
  (extra & 4 ? templates.title : templates.body) = std::string(tmpl);
  const bool failure = r.status != TaskStatus::kSuccess;
  // The template text is not escaped: only one without '<' is sure to mention no one.
  const bool template_may_mention = Contains(tmpl, "<");

  SlackOptions slack;
  slack.templates = templates;
  if (extra & 1) slack.mention_on_failure = {"U0123ABCD", "here", "S0ABC", "bogus id", "U0123ABCD"};
  CheckSlackPayload(BuildSlackPayload(r, slack),
                    template_may_mention || (failure && !slack.mention_on_failure.empty()));

  DiscordOptions discord_options;
  discord_options.templates = templates;
  if (extra & 2) {
    discord_options.mention_users = {"123456789012345678", "not a snowflake"};
    discord_options.mention_roles = {"876543210987654321"};
  }
  if (extra & 8) discord_options.username = r.job;
  CheckDiscordPayload(BuildDiscordPayload(r, discord_options), failure && (extra & 2) != 0);
  return 0;
}

const std::vector<FuzzTarget>& AllFuzzTargets() {
  static const std::vector<FuzzTarget> kTargets = {
      {"schedule", FuzzSchedule}, {"config", FuzzConfig},     {"sqs_json", FuzzSqsJson},
      {"sqs_xml", FuzzSqsXml},    {"envelope", FuzzEnvelope}, {"webhook", FuzzWebhook},
  };
  return kTargets;
}

}  // namespace taskpipe::fuzz
