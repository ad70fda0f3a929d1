#include "producer/envelope.h"

#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "common/time_format.h"
#include "config/json_text.h"
#include "queue/validate.h"

namespace taskpipe {
namespace {

using nlohmann::json;

std::string FormatTime(std::chrono::system_clock::time_point t) {
  return std::chrono::floor<std::chrono::seconds>(t) == t ? FormatRfc3339Utc(t) : FormatRfc3339UtcMillis(t);
}

Status Fault(std::string message) {
  return InvalidArgumentError("not a taskpipe envelope: " + std::move(message));
}

StatusOr<std::chrono::system_clock::time_point> ReadTime(const json& object, const char* key) {
  const auto it = object.find(key);
  if (it == object.end()) return Fault(std::string("\"") + key + "\" is missing");
  if (!it->is_string()) {
    return Fault(std::string("\"") + key + "\" must be an RFC 3339 time string, got " +
                 DescribeJsonValue(*it));
  }
  StatusOr<std::chrono::system_clock::time_point> t = ParseRfc3339(it->get_ref<const std::string&>());
  if (!t.ok()) return Fault(std::string("\"") + key + "\": " + t.status().message());
  return t;
}

// Whether `text` can be written between quotes as it is: printable ASCII, no '"' or '\\'.
bool IsPlainJsonString(std::string_view text) {
  for (const char c : text) {
    if (c < 0x20 || c > 0x7E || c == '"' || c == '\\') return false;
  }
  return true;
}

// A cursor over a body for DecodeSimpleEnvelope().
class SimpleScanner {
 public:
  explicit SimpleScanner(std::string_view text) : s_(text) {}

  void SkipSpace() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  bool Take(char c) {
    SkipSpace();
    if (i_ >= s_.size() || s_[i_] != c) return false;
    ++i_;
    return true;
  }
  char Peek() {
    SkipSpace();
    return i_ < s_.size() ? s_[i_] : '\0';
  }
  bool AtEnd() {
    SkipSpace();
    return i_ == s_.size();
  }
  // A string of plain characters (IsPlainJsonString), quotes included; false for anything else.
  bool PlainString(std::string_view* out) {
    if (!Take('"')) return false;
    const std::size_t close = s_.find('"', i_);
    if (close == std::string_view::npos || !IsPlainJsonString(s_.substr(i_, close - i_))) return false;
    *out = s_.substr(i_, close - i_);
    i_ = close + 1;
    return true;
  }
  // The text of an object value, from '{' to its matching '}', if the rest of the body nests no
  // more than `max_depth` levels; not checked beyond that: the caller parses it.
  bool ObjectSpan(int max_depth, std::string_view* out) {
    SkipSpace();
    const JsonBrackets brackets = ScanJsonBrackets(s_.substr(i_), max_depth);
    if (brackets.too_deep || brackets.end == 0) return false;
    *out = s_.substr(i_, brackets.end);
    i_ += brackets.end;
    return true;
  }

 private:
  std::string_view s_;
  std::size_t i_ = 0;
};

// The common case, quickly: a body as EncodeEnvelope writes it for plain job names, that is an
// object of exactly the four keys, each once, whose job and times (and the task, when it is a
// string) are plain strings. Yields nothing for any other body, valid or not, and DecodeEnvelope()
// falls back to its general parser: so both paths accept the same bodies and decode them alike
// (the envelope tests and the envelope fuzz target compare the two).
std::optional<Envelope> DecodeSimpleEnvelope(std::string_view body) {
  SimpleScanner scan(body);
  if (!scan.Take('{')) return std::nullopt;
  std::string_view job, scheduled_at, fired_at, task_text;
  bool task_is_string = false;
  int seen = 0;  // bit per key
  do {
    std::string_view key;
    if (!scan.PlainString(&key) || !scan.Take(':')) return std::nullopt;
    int bit = 0;
    bool ok = false;
    if (key == "job") {
      bit = 1;
      ok = scan.PlainString(&job);
    } else if (key == "task") {
      bit = 2;
      task_is_string = scan.Peek() == '"';
      ok = task_is_string ? scan.PlainString(&task_text)
                          : scan.Peek() == '{' && scan.ObjectSpan(kMaxEnvelopeDepth - 1, &task_text);
    } else if (key == "scheduled_at") {
      bit = 4;
      ok = scan.PlainString(&scheduled_at);
    } else if (key == "fired_at") {
      bit = 8;
      ok = scan.PlainString(&fired_at);
    }
    if (!ok || (seen & bit) != 0) return std::nullopt;
    seen |= bit;
  } while (scan.Take(','));
  if (!scan.Take('}') || !scan.AtEnd() || seen != 15 || job.empty()) return std::nullopt;

  StatusOr<std::chrono::system_clock::time_point> scheduled = ParseRfc3339(scheduled_at);
  StatusOr<std::chrono::system_clock::time_point> fired = ParseRfc3339(fired_at);
  if (!scheduled.ok() || !fired.ok()) return std::nullopt;
  Envelope envelope;
  envelope.job.assign(job);
  if (task_is_string) {
    envelope.task = std::string(task_text);
  } else {
    envelope.task = json::parse(task_text, nullptr, /*allow_exceptions=*/false);
    if (envelope.task.is_discarded()) return std::nullopt;
  }
  envelope.scheduled_at = *scheduled;
  envelope.fired_at = *fired;
  return envelope;
}

}  // namespace

std::string EncodeEnvelope(const Envelope& envelope) {
  // Key order as DESIGN.md writes it. Written piece by piece rather than through an ordered_json
  // object: the producer and the benchmarks encode one per message, and building the object
  // (copying the task) cost as much as writing it. nlohmann's serializer still writes the strings
  // and the task, so escaping is unchanged; error_handler_t::replace turns invalid UTF-8 into
  // U+FFFD instead of throwing.
  const auto write = [&](bool ensure_ascii) {
    const std::string scheduled_at = FormatTime(envelope.scheduled_at);
    const std::string fired_at = FormatTime(envelope.fired_at);
    std::string text;
    text.reserve(envelope.job.size() + scheduled_at.size() + fired_at.size() + 64);
    text += "{\"job\":";
    if (IsPlainJsonString(envelope.job)) {
      text += '"';
      text += envelope.job;
      text += '"';
    } else {
      text += json(envelope.job).dump(-1, ' ', ensure_ascii, json::error_handler_t::replace);
    }
    text += ",\"task\":";
    text += envelope.task.dump(-1, ' ', ensure_ascii, json::error_handler_t::replace);
    text += ",\"scheduled_at\":\"";
    text += scheduled_at;
    text += "\",\"fired_at\":\"";
    text += fired_at;
    text += "\"}";
    return text;
  };
  std::string text = write(/*ensure_ascii=*/false);
  // Characters such as U+FFFE are valid JSON but SQS refuses them in a body; escaped, they pass.
  if (!IsValidMessageText(text)) text = write(/*ensure_ascii=*/true);
  return text;
}

StatusOr<Envelope> DecodeEnvelope(std::string_view body) {
  // The fast path checks the nesting of what it parses itself.
  if (std::optional<Envelope> simple = DecodeSimpleEnvelope(body)) return std::move(*simple);
  return internal::DecodeEnvelopeGeneral(body);
}

namespace internal {

StatusOr<Envelope> DecodeEnvelopeGeneral(std::string_view body) {
  if (ScanJsonBrackets(body, kMaxEnvelopeDepth).too_deep) {
    return Fault("the body nests more than " + std::to_string(kMaxEnvelopeDepth) + " levels deep");
  }
  json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return Fault("the body is not valid JSON (" + std::to_string(body.size()) + " bytes)");
  }
  if (!parsed.is_object()) return Fault("expected a JSON object, got " + DescribeJsonValue(parsed));

  Envelope envelope;
  const auto job = parsed.find("job");
  if (job == parsed.end()) return Fault("\"job\" is missing");
  if (!job->is_string()) return Fault("\"job\" must be a string, got " + DescribeJsonValue(*job));
  envelope.job = job->get<std::string>();
  if (envelope.job.empty()) return Fault("\"job\" is empty");

  const auto task = parsed.find("task");
  if (task == parsed.end()) return Fault("\"task\" is missing");
  if (!task->is_string() && !task->is_object()) {
    return Fault("\"task\" must be a string or an object, got " + DescribeJsonValue(*task));
  }
  envelope.task = std::move(*task);

  StatusOr<std::chrono::system_clock::time_point> scheduled_at = ReadTime(parsed, "scheduled_at");
  if (!scheduled_at.ok()) return scheduled_at.status();
  envelope.scheduled_at = *scheduled_at;
  StatusOr<std::chrono::system_clock::time_point> fired_at = ReadTime(parsed, "fired_at");
  if (!fired_at.ok()) return fired_at.status();
  envelope.fired_at = *fired_at;
  return envelope;
}

}  // namespace internal
}  // namespace taskpipe
