#include "producer/envelope.h"

#include <string>
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

// Whether `text` nests objects and arrays more than `max_depth` deep, checked before parsing so
// that a hostile body never becomes a deep tree. Brackets inside strings do not count.
bool NestedTooDeep(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max_depth) return true;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return false;
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

}  // namespace

std::string EncodeEnvelope(const Envelope& envelope) {
  // Key order as DESIGN.md writes it (nlohmann's ordered_json keeps insertion order).
  nlohmann::ordered_json body;
  body["job"] = envelope.job;
  body["task"] = envelope.task;
  body["scheduled_at"] = FormatTime(envelope.scheduled_at);
  body["fired_at"] = FormatTime(envelope.fired_at);
  // error_handler_t::replace: invalid UTF-8 becomes U+FFFD instead of a type_error exception.
  std::string text = body.dump(-1, ' ', /*ensure_ascii=*/false, json::error_handler_t::replace);
  if (!IsValidMessageText(text)) {
    // Characters such as U+FFFE are valid JSON but SQS refuses them in a body; escaped, they pass.
    text = body.dump(-1, ' ', /*ensure_ascii=*/true, json::error_handler_t::replace);
  }
  return text;
}

StatusOr<Envelope> DecodeEnvelope(std::string_view body) {
  if (NestedTooDeep(body, kMaxEnvelopeDepth)) {
    return Fault("the body nests more than " + std::to_string(kMaxEnvelopeDepth) + " levels deep");
  }
  const json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
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
  envelope.task = *task;

  StatusOr<std::chrono::system_clock::time_point> scheduled_at = ReadTime(parsed, "scheduled_at");
  if (!scheduled_at.ok()) return scheduled_at.status();
  envelope.scheduled_at = *scheduled_at;
  StatusOr<std::chrono::system_clock::time_point> fired_at = ReadTime(parsed, "fired_at");
  if (!fired_at.ok()) return fired_at.status();
  envelope.fired_at = *fired_at;
  return envelope;
}

}  // namespace taskpipe
