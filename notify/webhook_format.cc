#include "notify/webhook_format.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "common/quote.h"
#include "common/redact.h"
#include "common/time_format.h"

// Sources for the limits and behaviours below (cited again where each is used):
//  [slack-webhooks]   https://api.slack.com/messaging/webhooks (incoming webhooks: posting JSON,
//                     "Handling errors"), and the error list of
//                     https://api.slack.com/changelog/2016-05-17-changes-to-errors-for-incoming-webhooks
//                     (400 invalid_payload, user_not_found; 403 action_prohibited; 404
//                     channel_not_found; 410 channel_is_archived; 500 rollup_error).
//  [slack-rate]       https://api.slack.com/docs/rate-limits ("HTTP 429 Too Many Requests ... and a
//                     Retry-After header containing the number of seconds until you can retry").
//  [slack-blocks]     https://api.slack.com/reference/block-kit/blocks (section text "Maximum
//                     length ... is 3000 characters"; "up to 50 blocks in each message"; context
//                     elements max 10).
//  [slack-format]     https://api.slack.com/reference/surfaces/formatting#escaping ("Slack uses &,
//                     <, and > as control characters ... You shouldn't HTML entity-encode the
//                     entire text").
//  [slack-truncate]   https://api.slack.com/changelog/2018-04-truncating-really-long-messages
//                     (top-level text is truncated beyond 40,000 characters; we stay far below).
//  [slack-attach]     https://api.slack.com/reference/messaging/attachments ("color", "blocks").
//  [slack-mentions]   mentions inside attachments do not reliably notify (mobile clients in
//                     particular): https://github.com/sciyoshi/redmine-slack/pull/29,
//                     https://github.com/PeteGoo/tcSlackBuildNotifier/issues/46; so ours go in the
//                     top-level "text".
//  [discord-webhook]  https://discord.com/developers/docs/resources/webhook#execute-webhook
//                     (content "up to 2000 characters"; query wait, thread_id; username).
//  [discord-embed]    https://discord.com/developers/docs/resources/message#embed-object-embed-limits
//                     (title 256, description 4096, 25 fields, field name 256, value 1024, footer
//                     text 2048, author name 256, 6000 in total over title, description, field
//                     names and values, footer text and author name).
//  [discord-mentions] https://discord.com/developers/docs/resources/message#allowed-mentions-object
//                     (parse: [] suppresses all mentions parsed from content; users/roles "Max size
//                     of 100").
//  [discord-rate]     https://docs.discord.com/developers/topics/rate-limits (X-RateLimit-Limit,
//                     -Remaining, -Reset, -Reset-After "can have decimals", -Bucket; on 429:
//                     X-RateLimit-Global, X-RateLimit-Scope user|global|shared, Retry-After, and a
//                     body {"message", "retry_after" (float seconds), "global", "code"?});
//                     https://support-dev.discord.com/hc/en-us/articles/6223003921559 (global
//                     limits: "Look for X-RateLimit-Scope: global in response headers").
//  [discord-errors]   https://discord.com/developers/docs/topics/opcodes-and-status-codes#json
//                     (10015 Unknown Webhook, 50027 Invalid Webhook Token, 50035 Invalid Form
//                     Body).
//  [discord-users]    https://discord.com/developers/docs/resources/user#usernames-and-nicknames
//                     (webhook names 1-80 characters, may not contain "clyde" or "discord").

namespace taskpipe {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using Escape = std::function<std::string(std::string_view)>;

constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD
constexpr std::string_view kZeroWidthSpace = "\xE2\x80\x8B";   // U+200B
constexpr std::size_t kMarkerChars = 13;                       // Utf8Length of either truncation marker

// Per-value caps in templates (the header lists them).
constexpr std::size_t kJobMaxChars = 200;
constexpr std::size_t kTaskMaxChars = 500;
constexpr std::size_t kMessageIdMaxChars = 200;
constexpr std::size_t kErrorMaxChars = 1000;
// {output} in a custom title: a title is one short line.
constexpr std::size_t kTitleOutputChars = 100;
// Our own Slack title stays short; mentions take at most this much of "text".
constexpr std::size_t kSlackTitleMaxChars = 500;
constexpr std::size_t kSlackMentionsMaxChars = 1000;
// Our own Discord footer (message id, times); leaves the description most of the 6000.
constexpr std::size_t kDiscordFooterOwnMaxChars = 400;
// A server-named wait longer than this is taken as this: a target should not sleep for days on
// one bad header.
constexpr milliseconds kMaxRetryAfter{3600 * 1000};
constexpr milliseconds kDefaultRetryAfter{1000};
// Bytes of a reply body quoted in DeliveryVerdict::error.
constexpr std::size_t kBodyExcerptBytes = 200;

std::string Dump(const json& payload) {
  // `replace`: invalid UTF-8 can never make dump() throw (everything is sanitized anyway).
  return payload.dump(-1, ' ', false, json::error_handler_t::replace);
}

bool IsFailure(TaskStatus status) {
  return status == TaskStatus::kFailure || status == TaskStatus::kTimeout || status == TaskStatus::kInvalid;
}

bool IsEpoch(std::chrono::system_clock::time_point t) { return t == std::chrono::system_clock::time_point{}; }

bool IsContinuation(unsigned char b) { return (b & 0xC0) == 0x80; }

// The length of the well-formed UTF-8 sequence at text[i] (Unicode Table 3-7), or 0 with
// `*subpart` set to the length of the maximal ill-formed subpart there (>= 1).
std::size_t WellFormedLength(std::string_view text, std::size_t i, std::size_t* subpart) {
  const auto b0 = static_cast<unsigned char>(text[i]);
  if (b0 < 0x80) return 1;
  std::size_t need = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
  } else if (b0 == 0xE0) {
    need = 2;
    lo = 0xA0;  // below: overlong
  } else if ((b0 >= 0xE1 && b0 <= 0xEC) || b0 == 0xEE || b0 == 0xEF) {
    need = 2;
  } else if (b0 == 0xED) {
    need = 2;
    hi = 0x9F;  // above: UTF-16 surrogates
  } else if (b0 == 0xF0) {
    need = 3;
    lo = 0x90;  // below: overlong
  } else if (b0 >= 0xF1 && b0 <= 0xF3) {
    need = 3;
  } else if (b0 == 0xF4) {
    need = 3;
    hi = 0x8F;  // above: > U+10FFFF
  } else {
    *subpart = 1;  // 0x80-0xC1 (continuation or overlong lead), 0xF5-0xFF
    return 0;
  }
  std::size_t k = 1;
  for (; k <= need && i + k < text.size(); ++k) {
    const auto b = static_cast<unsigned char>(text[i + k]);
    if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) break;
  }
  if (k == need + 1) return need + 1;
  *subpart = k;
  return 0;
}

// Byte offset where code point `n` starts (text.size() when there are fewer).
std::size_t OffsetOfChar(std::string_view text, std::size_t n) {
  std::size_t count = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (IsContinuation(static_cast<unsigned char>(text[i]))) continue;
    if (count == n) return i;
    ++count;
  }
  return text.size();
}

// Byte offset where the last `n` code points start (0 when there are fewer).
std::size_t OffsetOfLastChars(std::string_view text, std::size_t n) {
  if (n == 0) return text.size();
  std::size_t count = 0;
  for (std::size_t i = text.size(); i-- > 0;) {
    if (IsContinuation(static_cast<unsigned char>(text[i]))) continue;
    if (++count == n) return i;
  }
  return 0;
}

// TruncateUtf8, plus `force_marker`: the text was already cut before it got here, so say so even
// when what is left fits.
std::string Truncate(std::string_view text, std::size_t max_chars, bool keep_tail, bool force_marker) {
  const std::size_t length = Utf8Length(text);
  if (length <= max_chars && !force_marker) return std::string(text);
  if (max_chars <= kMarkerChars) {  // no room for a marker and text: cut bare
    return keep_tail ? std::string(text.substr(OffsetOfLastChars(text, max_chars)))
                     : std::string(text.substr(0, OffsetOfChar(text, max_chars)));
  }
  const std::size_t keep = max_chars - kMarkerChars;
  if (keep_tail) {
    return std::string(kTruncatedTailMarker).append(text.substr(OffsetOfLastChars(text, keep)));
  }
  return std::string(text.substr(0, OffsetOfChar(text, keep))).append(kTruncatedHeadMarker);
}

// A whole rendered text cut to `max_chars` as a last resort. For Slack, a cut never leaves half
// an entity ("&am") behind.
std::string CutRendered(std::string_view text, std::size_t max_chars, bool slack_entities) {
  if (Utf8Length(text) <= max_chars) return std::string(text);
  if (max_chars <= kMarkerChars) return Truncate(text, max_chars, false, false);
  std::size_t end = OffsetOfChar(text, max_chars - kMarkerChars);
  if (slack_entities) {
    // Our entities are at most "&amp;" (5 bytes): an '&' in the last 4 bytes kept without its ';'
    // is a cut entity.
    const std::size_t amp = text.substr(0, end).rfind('&');
    if (amp != std::string_view::npos && end - amp < 5 &&
        text.substr(amp, end - amp).find(';') == std::string_view::npos) {
      end = amp;
    }
  }
  return std::string(text.substr(0, end)).append(kTruncatedHeadMarker);
}

std::string_view TrimAscii(std::string_view text) {
  const std::size_t begin = text.find_first_not_of(" \t\r\n");
  if (begin == std::string_view::npos) return {};
  const std::size_t end = text.find_last_not_of(" \t\r\n");
  return text.substr(begin, end - begin + 1);
}

bool EqualsNoCase(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    return lower(x) == lower(y);
  });
}

// ----- Templates -------------------------------------------------------------------------------

constexpr std::string_view kPlaceholders[] = {"job",          "task",        "status", "duration",
                                              "attempt",      "message_id",  "output", "error",
                                              "scheduled_at", "finished_at", "retry"};

bool IsPlaceholder(std::string_view name) {
  return std::find(std::begin(kPlaceholders), std::end(kPlaceholders), name) != std::end(kPlaceholders);
}

// Walks `tmpl`, handing literal text to on_text and each "{name}" to on_placeholder(name, raw,
// offset). "{{" and "}}" are literal braces; a lone '}' is literal; a '{' with no '}' before the
// next '{' (or the end) is literal too. Returns the offset of the first such unclosed '{', or npos.
template <typename OnText, typename OnPlaceholder>
std::size_t ScanTemplate(std::string_view tmpl, OnText on_text, OnPlaceholder on_placeholder) {
  std::size_t unclosed = std::string_view::npos;
  std::size_t start = 0;  // of the pending literal run
  std::size_t i = 0;
  while (i < tmpl.size()) {
    const char c = tmpl[i];
    if (c != '{' && c != '}') {
      ++i;
      continue;
    }
    if (i + 1 < tmpl.size() && tmpl[i + 1] == c) {  // "{{" or "}}"
      on_text(tmpl.substr(start, i + 1 - start));   // the run and one brace
      i += 2;
      start = i;
      continue;
    }
    if (c == '}') {
      ++i;
      continue;
    }
    const std::size_t close = tmpl.find_first_of("{}", i + 1);
    if (close == std::string_view::npos || tmpl[close] == '{') {
      if (unclosed == std::string_view::npos) unclosed = i;
      ++i;
      continue;
    }
    on_text(tmpl.substr(start, i - start));
    on_placeholder(tmpl.substr(i + 1, close - i - 1), tmpl.substr(i, close - i + 1), i);
    i = close + 1;
    start = i;
  }
  on_text(tmpl.substr(start));
  return unclosed;
}

std::string KnownPlaceholderList() {
  std::string out;
  for (std::string_view name : kPlaceholders) {
    if (!out.empty()) out += ", ";
    out.append("{").append(name).append("}");
  }
  return out;
}

// {output}: the kept tail of the handler's output, sanitized, trimmed, defused, cut.
std::string OutputValue(std::string_view raw, std::size_t max_chars) {
  if (max_chars == 0 || raw.empty()) return "";
  // Only the tail can survive the cut: sanitize a window of it instead of all of it. A character
  // takes at most 4 bytes; the slack covers dropped control characters and escape sequences
  // (when more than that is dropped, the tail shown is just shorter).
  bool cut = false;
  if (max_chars < raw.size() / 4) {
    const std::size_t window = max_chars * 4 + 256;
    if (window < raw.size()) {
      std::size_t begin = raw.size() - window;
      for (int k = 0; k < 3 && begin < raw.size() && IsContinuation(static_cast<unsigned char>(raw[begin]));
           ++k) {
        ++begin;
      }
      raw = raw.substr(begin);
      cut = true;
    }
  }
  std::string clean = SanitizeUtf8(raw);
  // Trailing whitespace and leading blank lines are noise in a code block.
  std::string_view view(clean);
  const std::size_t last = view.find_last_not_of(" \t\n");
  view = last == std::string_view::npos ? std::string_view() : view.substr(0, last + 1);
  const std::size_t first = view.find_first_not_of(" \t\n");
  if (first != std::string_view::npos) {
    const std::size_t line_start = view.rfind('\n', first);
    if (line_start != std::string_view::npos) view.remove_prefix(line_start + 1);
  }
  return Truncate(DefuseCodeFences(view), max_chars, /*keep_tail=*/true, /*force_marker=*/cut);
}

// A short value (job, task, error, message id): sanitized, trimmed, cut, defused.
std::string PlainValue(std::string_view raw, std::size_t max_chars) {
  return DefuseCodeFences(TruncateUtf8(TrimAscii(SanitizeUtf8(raw)), max_chars));
}

// The unescaped value of placeholder `name`, or nullopt for an unknown name.
std::optional<std::string> PlaceholderValue(std::string_view name, const TaskResult& r,
                                            std::size_t max_output_chars) {
  if (name == "job") return r.job.empty() ? std::string("(unknown job)") : PlainValue(r.job, kJobMaxChars);
  if (name == "task") return PlainValue(r.task, kTaskMaxChars);
  if (name == "status") return std::string(TaskStatusName(r.status));
  if (name == "duration") return FormatDurationForHumans(r.duration);
  if (name == "attempt") return std::to_string(r.receive_count);
  if (name == "message_id") return PlainValue(r.message_id, kMessageIdMaxChars);
  if (name == "output") return OutputValue(r.output, max_output_chars);
  if (name == "error") return PlainValue(r.error, kErrorMaxChars);
  if (name == "scheduled_at")
    return IsEpoch(r.scheduled_at) ? std::string() : FormatRfc3339Utc(r.scheduled_at);
  if (name == "finished_at") return IsEpoch(r.finished_at) ? std::string() : FormatRfc3339Utc(r.finished_at);
  if (name == "retry") return std::string(r.will_retry ? "will retry" : "");
  return std::nullopt;
}

struct Rendered {
  std::string text;
  std::size_t output_raw_chars = 0;      // characters of {output} values before escaping
  std::size_t output_escaped_chars = 0;  // ... and after
};

Rendered Render(std::string_view tmpl, const TaskResult& r, const Escape& escape,
                std::size_t max_output_chars) {
  const std::string clean = SanitizeUtf8(tmpl);
  Rendered out;
  std::optional<std::string> output;  // computed at most once
  ScanTemplate(
      clean, [&](std::string_view text) { out.text.append(text); },
      [&](std::string_view name, std::string_view raw, std::size_t) {
        std::optional<std::string> value;
        if (name == "output") {
          if (!output) output = OutputValue(r.output, max_output_chars);
          value = *output;
        } else {
          value = PlaceholderValue(name, r, max_output_chars);
        }
        if (!value) {
          out.text.append(raw);
          return;
        }
        std::string escaped = escape ? escape(*value) : *value;
        if (name == "output") {
          out.output_raw_chars += Utf8Length(*value);
          out.output_escaped_chars += Utf8Length(escaped);
        }
        out.text += escaped;
      });
  return out;
}

// Renders with render(output_budget) and shrinks the output's tail until the text fits in
// `max_chars`; cuts the whole text as a last resort (a huge template, or a huge error plus task).
template <typename RenderFn>
std::string Fit(RenderFn render, std::size_t max_chars, bool slack_entities) {
  std::size_t budget = max_chars;
  Rendered rendered = render(budget);
  for (int round = 0; round < 8; ++round) {
    const std::size_t length = Utf8Length(rendered.text);
    if (length <= max_chars) return std::move(rendered.text);
    if (rendered.output_escaped_chars == 0) break;
    const std::size_t over = length - max_chars;
    // Escaping may have grown the output: shrink the raw budget in proportion.
    std::size_t next = 0;
    if (over < rendered.output_escaped_chars) {
      next =
          rendered.output_raw_chars * (rendered.output_escaped_chars - over) / rendered.output_escaped_chars;
      next = std::min(next, rendered.output_raw_chars - 1);
    }
    if (next <= kMarkerChars) next = 0;  // a marker with nothing after it helps no one
    budget = next;
    rendered = render(budget);
  }
  return CutRendered(rendered.text, max_chars, slack_entities);
}

// ----- Default messages ------------------------------------------------------------------------

enum class Platform { kSlack, kDiscord };

std::string_view StatusSymbol(TaskStatus status) {
  switch (status) {
    case TaskStatus::kSuccess:
      return "\u2705";  // ✅
    case TaskStatus::kFailure:
      return "\u274C";  // ❌
    case TaskStatus::kTimeout:
      return "\u23F1\uFE0F";  // ⏱️
    case TaskStatus::kInvalid:
      return "\u26A0\uFE0F";  // ⚠️
  }
  return "";
}

Rendered RenderTitle(const MessageTemplates& templates, const TaskResult& r, const Escape& escape) {
  if (!templates.title.empty()) return Render(templates.title, r, escape, kTitleOutputChars);
  Rendered title = Render("{job}: {status}", r, escape, 0);
  title.text.insert(0, std::string(StatusSymbol(r.status)) + " ");
  if (r.will_retry) title.text += " (will retry)";
  return title;
}

// The default body: one line per thing worth showing. (The conditions live here rather than in
// the template language, which stays a plain substitution.)
Rendered RenderDefaultBody(Platform platform, const TaskResult& r, const Escape& escape,
                           std::size_t output_budget) {
  const bool slack = platform == Platform::kSlack;
  std::vector<std::string> lines;
  auto add = [&](std::string_view tmpl) { lines.push_back(Render(tmpl, r, escape, 0).text); };
  if (slack) add(r.will_retry ? "*Duration:* {duration} \u00B7 {retry}" : "*Duration:* {duration}");
  if (!PlainValue(r.error, 1).empty()) add(slack ? "*Error:* {error}" : "**Error:** {error}");
  if (!PlainValue(r.task, 1).empty()) add(slack ? "*Task:* `{task}`" : "**Task:** `{task}`");
  Rendered output = Render("{output}", r, escape, output_budget);
  if (!output.text.empty()) lines.push_back("```\n" + output.text + "\n```");
  Rendered body;
  for (std::string& line : lines) {
    if (!body.text.empty()) body.text += '\n';
    body.text += line;
  }
  body.output_raw_chars = output.output_raw_chars;
  body.output_escaped_chars = output.output_escaped_chars;
  return body;
}

std::string RenderBodyFitted(Platform platform, const MessageTemplates& templates, const TaskResult& r,
                             const Escape& escape, std::size_t max_chars) {
  const bool slack = platform == Platform::kSlack;
  if (templates.body.empty()) {
    return Fit([&](std::size_t budget) { return RenderDefaultBody(platform, r, escape, budget); }, max_chars,
               slack);
  }
  return Fit([&](std::size_t budget) { return Render(templates.body, r, escape, budget); }, max_chars, slack);
}

// ----- Replies ---------------------------------------------------------------------------------

// Seconds as a server writes them ("1", "0.5", "0.640"): non-negative, finite; capped.
std::optional<milliseconds> ParseSeconds(std::string_view text) {
  text = TrimAscii(text);
  if (text.empty()) return std::nullopt;
  double seconds = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), seconds);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(seconds) || seconds < 0) {
    return std::nullopt;
  }
  if (seconds * 1000.0 >= static_cast<double>(kMaxRetryAfter.count())) return kMaxRetryAfter;
  // Round up (to the millisecond, forgiving floating-point noise): waiting a hair too long is
  // harmless, a hair too short earns another 429.
  return milliseconds(static_cast<std::int64_t>(std::ceil(seconds * 1000.0 - 1e-6)));
}

std::optional<milliseconds> JsonSeconds(const json& value) {
  if (!value.is_number()) return std::nullopt;
  const double seconds = value.get<double>();
  if (!std::isfinite(seconds) || seconds < 0) return std::nullopt;
  if (seconds * 1000.0 >= static_cast<double>(kMaxRetryAfter.count())) return kMaxRetryAfter;
  return milliseconds(static_cast<std::int64_t>(std::ceil(seconds * 1000.0 - 1e-6)));
}

// "1 s", "0.64 s", "1.5 s".
std::string FormatSeconds(milliseconds wait) {
  std::string out = std::to_string(wait.count() / 1000);
  if (const auto frac = wait.count() % 1000; frac != 0) {
    char buf[8];
    std::snprintf(buf, sizeof buf, ".%03d", static_cast<int>(frac));
    std::string decimals(buf);
    while (decimals.back() == '0') decimals.pop_back();
    out += decimals;
  }
  return out + " s";
}

// At most ~kBodyExcerptBytes of a reply body on one line: sanitized, whitespace collapsed, known
// secret shapes (webhook URLs among them) redacted.
std::string BodyExcerpt(std::string_view body) {
  const std::string clean = SanitizeUtf8(body.substr(0, std::min(body.size(), kBodyExcerptBytes * 4 + 64)));
  std::string line;
  for (char c : clean) {
    const bool space = c == '\n' || c == '\t' || c == ' ';
    if (space && (line.empty() || line.back() == ' ')) continue;
    line += space ? ' ' : c;
  }
  while (!line.empty() && line.back() == ' ') line.pop_back();
  line = RedactKnownSecrets(line);
  const bool cut = line.size() > kBodyExcerptBytes || body.size() > kBodyExcerptBytes * 4 + 64;
  if (line.size() > kBodyExcerptBytes) {
    std::size_t end = kBodyExcerptBytes;
    while (end > 0 && IsContinuation(static_cast<unsigned char>(line[end]))) --end;
    line.resize(end);
  }
  if (cut) line += "\u2026";
  return line;
}

json ParseJsonObject(std::string_view body) {
  const std::string_view trimmed = TrimAscii(body);
  if (trimmed.empty() || trimmed.front() != '{') return json();
  json parsed = json::parse(trimmed, nullptr, /*allow_exceptions=*/false);
  return parsed.is_object() ? parsed : json();
}

// The error name in a Slack reply: the plain-text body of an incoming webhook ("no_service"), or
// "error" of a JSON body ({"ok":false,"error":"invalid_token"}, as workflow webhooks answer).
std::string SlackErrorName(std::string_view body) {
  const json parsed = ParseJsonObject(body);
  if (parsed.is_object()) {
    const auto it = parsed.find("error");
    return it != parsed.end() && it->is_string() ? it->get<std::string>() : std::string();
  }
  const std::string_view token = TrimAscii(body);
  if (token.empty() || token.size() > 64) return "";
  const bool name_like =
      std::all_of(token.begin(), token.end(), [](char c) { return (c >= 'a' && c <= 'z') || c == '_'; });
  return name_like ? std::string(token) : std::string();
}

bool IsSlackDeadError(std::string_view name) {
  // The webhook (or its app, channel or workspace) is gone or may not post here: every later
  // message would fail the same way. [slack-webhooks]
  constexpr std::string_view kDead[] = {"no_service",        "no_team",
                                        "invalid_token",     "team_disabled",
                                        "channel_not_found", "channel_is_archived",
                                        "action_prohibited", "posting_to_general_channel_denied"};
  return std::find(std::begin(kDead), std::end(kDead), name) != std::end(kDead);
}

bool IsSlackPayloadError(std::string_view name) {
  constexpr std::string_view kRejected[] = {"invalid_payload", "no_text",        "too_many_attachments",
                                            "user_not_found",  "invalid_blocks", "invalid_blocks_format"};
  return std::find(std::begin(kRejected), std::end(kRejected), name) != std::end(kRejected);
}

}  // namespace

// ----- Text helpers ------------------------------------------------------------------------------

std::string SanitizeUtf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      if (c == 0x1B && i + 1 < text.size() && text[i + 1] == '[') {
        // ECMA-48 CSI: ESC '[' parameter bytes 0x30-0x3F, intermediate bytes 0x20-0x2F, one final
        // byte 0x40-0x7E. A malformed one loses what was scanned; the byte that broke it is kept.
        std::size_t j = i + 2;
        auto in = [&](unsigned char lo, unsigned char hi) {
          return j < text.size() && static_cast<unsigned char>(text[j]) >= lo &&
                 static_cast<unsigned char>(text[j]) <= hi;
        };
        while (in(0x30, 0x3F)) ++j;
        while (in(0x20, 0x2F)) ++j;
        if (in(0x40, 0x7E)) ++j;
        i = j;
        continue;
      }
      // C0 controls go, except line feed and tab; so does '\r' (making "\r\n" a "\n").
      if (c >= 0x20 || c == '\n' || c == '\t') out += static_cast<char>(c);
      ++i;
      continue;
    }
    std::size_t subpart = 1;
    const std::size_t n = WellFormedLength(text, i, &subpart);
    if (n != 0) {
      out.append(text.substr(i, n));
      i += n;
    } else {
      out.append(kReplacementChar);
      i += subpart;
    }
  }
  return out;
}

std::size_t Utf8Length(std::string_view text) {
  return static_cast<std::size_t>(std::count_if(
      text.begin(), text.end(), [](char c) { return !IsContinuation(static_cast<unsigned char>(c)); }));
}

std::string TruncateUtf8(std::string_view text, std::size_t max_chars, bool keep_tail) {
  return Truncate(text, max_chars, keep_tail, /*force_marker=*/false);
}

std::string EscapeSlack(std::string_view text) {
  // [slack-format]: exactly these three, nothing else.
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string DefuseCodeFences(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    if (text[i] != '`') {
      out += text[i++];
      continue;
    }
    std::size_t j = i;
    while (j < text.size() && text[j] == '`') ++j;
    const std::size_t run = j - i;
    if (run < 3) {
      out.append(run, '`');
    } else {
      for (std::size_t k = 0; k < run; ++k) {
        if (k > 0) out.append(kZeroWidthSpace);
        out += '`';
      }
    }
    i = j;
  }
  return out;
}

std::string FormatDurationForHumans(milliseconds duration) {
  const long long ms = std::max<long long>(0, duration.count());
  char buf[64];
  if (ms < 1000) {
    std::snprintf(buf, sizeof buf, "%lld ms", ms);
  } else if (ms < 60 * 1000) {
    std::snprintf(buf, sizeof buf, "%lld.%lld s", ms / 1000, ms % 1000 / 100);
  } else if (ms < 3600 * 1000) {
    const long long s = ms / 1000;
    std::snprintf(buf, sizeof buf, "%lld min %02lld s", s / 60, s % 60);
  } else {
    const long long m = ms / (60 * 1000);
    std::snprintf(buf, sizeof buf, "%lld h %02lld min", m / 60, m % 60);
  }
  return buf;
}

// ----- Templates -------------------------------------------------------------------------------

Status ValidateTemplate(std::string_view tmpl) {
  std::optional<Status> unknown;
  std::size_t unknown_offset = std::string_view::npos;
  const std::size_t unclosed = ScanTemplate(
      tmpl, [](std::string_view) {},
      [&](std::string_view name, std::string_view raw, std::size_t offset) {
        if (unknown || IsPlaceholder(name)) return;
        unknown_offset = offset;
        unknown = InvalidArgumentError(
            "unknown placeholder " + QuoteForError(raw) + " at offset " + std::to_string(offset) +
            "; known placeholders: " + KnownPlaceholderList() + " (write {{ and }} for literal braces)");
      });
  // The first fault in the text is the one to report.
  if (unclosed != std::string_view::npos && (!unknown || unclosed < unknown_offset)) {
    return InvalidArgumentError("unclosed \"{\" at offset " + std::to_string(unclosed) +
                                " (placeholders look like {job}; write {{ for a literal brace)");
  }
  if (unknown) return *unknown;
  return Status::Ok();
}

std::string RenderTemplate(std::string_view tmpl, const TaskResult& r,
                           const std::function<std::string(std::string_view)>& escape,
                           std::size_t max_output_chars) {
  return Render(tmpl, r, escape, max_output_chars).text;
}

// ----- Slack -----------------------------------------------------------------------------------

bool IsSlackMentionId(std::string_view id) {
  if (id == "here" || id == "channel" || id == "everyone") return true;
  // User ids U…/W… and user group ids S…: upper-case letters and digits.
  if (id.size() < 2 || id.size() > 32 || (id[0] != 'U' && id[0] != 'W' && id[0] != 'S')) return false;
  return std::all_of(id.begin() + 1, id.end(),
                     [](char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); });
}

std::string BuildSlackPayload(const TaskResult& r, const SlackOptions& options) {
  const Escape escape = [](std::string_view text) { return EscapeSlack(text); };

  // "text": mentions first, then the title. [slack-mentions] Only ids from the configuration,
  // only for failures; nothing from the task can form one because every value is escaped.
  std::string mentions;
  if (IsFailure(r.status)) {
    std::vector<std::string_view> seen;
    for (const std::string& id : options.mention_on_failure) {
      if (!IsSlackMentionId(id) || std::find(seen.begin(), seen.end(), id) != seen.end()) continue;
      seen.push_back(id);
      std::string mention = id == "here" || id == "channel" || id == "everyone" ? "<!" + id + ">"
                            : id[0] == 'S'                                      ? "<!subteam^" + id + ">"
                                                                                : "<@" + id + ">";
      if (mentions.size() + mention.size() + 1 > kSlackMentionsMaxChars) break;  // ASCII: bytes == chars
      mentions += mention + " ";
    }
  }
  std::string title = CutRendered(RenderTitle(options.templates, r, escape).text, kSlackTitleMaxChars, true);
  if (TrimAscii(title).empty()) title = TaskStatusName(r.status);  // never post an empty message
  // [slack-truncate]: Slack cuts "text" at 40,000; ours is at most 1,000 + 500 characters.
  std::string text = CutRendered(mentions + title, kSlackTextMaxChars, true);

  json blocks = json::array();
  // [slack-blocks]: section text at most 3000 characters; the output's tail shrinks first.
  const std::string section =
      RenderBodyFitted(Platform::kSlack, options.templates, r, escape, kSlackSectionTextMaxChars);
  if (!TrimAscii(section).empty()) {  // an empty text object is invalid_blocks
    blocks.push_back({{"type", "section"}, {"text", {{"type", "mrkdwn"}, {"text", section}}}});
  }
  std::vector<std::string> context_parts;
  if (!r.message_id.empty())
    context_parts.push_back("message " + EscapeSlack(PlainValue(r.message_id, kMessageIdMaxChars)));
  if (r.receive_count > 0) context_parts.push_back("attempt " + std::to_string(r.receive_count));
  if (!IsEpoch(r.scheduled_at)) context_parts.push_back("scheduled " + FormatRfc3339Utc(r.scheduled_at));
  if (!context_parts.empty()) {
    std::string context;
    for (const std::string& part : context_parts) context += (context.empty() ? "" : " \u00B7 ") + part;
    // [slack-blocks]: one mrkdwn element (at most 10), text at most 3000 characters.
    blocks.push_back(
        {{"type", "context"},
         {"elements", json::array({{{"type", "mrkdwn"},
                                    {"text", CutRendered(context, kSlackContextTextMaxChars, true)}}})}});
  }
  // At most two blocks here; [slack-blocks] allows 50.
  static_assert(2 <= kSlackMaxBlocks);

  // [slack-attach]: the colour bar of a secondary attachment holding our blocks.
  std::string_view color = "#a30200";  // failure: red
  switch (r.status) {
    case TaskStatus::kSuccess:
      color = "#2eb886";  // green
      break;
    case TaskStatus::kFailure:
      break;
    case TaskStatus::kTimeout:
      color = "#daa038";  // orange
      break;
    case TaskStatus::kInvalid:
      color = "#e01e5a";  // crimson
      break;
  }
  json attachment = {{"color", color}};
  if (!blocks.empty()) attachment["blocks"] = std::move(blocks);
  json payload = {{"text", std::move(text)},
                  {"attachments", json::array({std::move(attachment)})},
                  // Links in task output should not grow previews under every notification.
                  {"unfurl_links", false},
                  {"unfurl_media", false}};
  return Dump(payload);
}

DeliveryVerdict ClassifySlackResponse(const HttpResponse& response) {
  DeliveryVerdict verdict;
  const int status = response.status;
  const std::string name = SlackErrorName(response.body);
  const std::string excerpt = BodyExcerpt(response.body);
  std::string error = "Slack answered " + std::to_string(status);
  if (!excerpt.empty()) error += " \"" + excerpt + "\"";

  if (status == 429) {
    // [slack-rate]: Retry-After in seconds. An HTTP-date (RFC 9110 allows one) is not worth a date
    // parser here: such a value, like no value, means the default wait.
    verdict.kind = DeliveryVerdict::Kind::kRateLimited;
    const std::optional<std::string> header = response.Header("Retry-After");
    verdict.retry_after = header ? ParseSeconds(*header).value_or(kDefaultRetryAfter) : kDefaultRetryAfter;
    verdict.error = error + " (retry after " + FormatSeconds(verdict.retry_after) + ")";
    return verdict;
  }
  if (IsSlackDeadError(name)) {
    verdict.kind = DeliveryVerdict::Kind::kDead;
  } else if (status >= 200 && status < 300) {
    if (!IsSlackPayloadError(name)) return DeliveryVerdict{.kind = DeliveryVerdict::Kind::kDelivered};
    verdict.kind = DeliveryVerdict::Kind::kRejected;
  } else if (status >= 500 || status == 408) {
    verdict.kind =
        DeliveryVerdict::Kind::kRetry;  // [slack-webhooks]: 500 rollup_error "likely not your fault"
  } else if (status == 401 || status == 403 || status == 404 || status == 410) {
    verdict.kind = DeliveryVerdict::Kind::kDead;
  } else if (status >= 400) {
    verdict.kind = DeliveryVerdict::Kind::kRejected;
  } else {
    verdict.kind = DeliveryVerdict::Kind::kRetry;  // 1xx, 3xx: not an answer we understand
  }
  verdict.error = std::move(error);
  return verdict;
}

// ----- Discord ---------------------------------------------------------------------------------

bool IsDiscordSnowflake(std::string_view id) {
  return !id.empty() && id.size() <= 20 &&
         std::all_of(id.begin(), id.end(), [](char c) { return c >= '0' && c <= '9'; });
}

StatusOr<std::string> DiscordRequestUrl(std::string_view url) {
  // Never quote `url`, nor any part of its path or query: the id and token are the credential.
  constexpr std::string_view kShape =
      "expected https://discord.com/api/webhooks/<id>/<token> (optionally /api/v<N>/webhooks/..., and a "
      "query "
      "such as ?thread_id=<id>)";
  auto fail = [&](std::string_view what) {
    return InvalidArgumentError("discord webhook url " + std::string(what) + "; " + std::string(kShape));
  };
  if (url.empty()) return fail("is empty");
  if (std::any_of(url.begin(), url.end(),
                  [](char c) { return static_cast<unsigned char>(c) <= 0x20 || c == 0x7F; })) {
    return fail("holds whitespace or control characters");
  }
  const std::size_t scheme_end = url.find("://");
  const std::string_view scheme =
      scheme_end == std::string_view::npos ? std::string_view() : url.substr(0, scheme_end);
  if (!EqualsNoCase(scheme, "https") && !EqualsNoCase(scheme, "http"))
    return fail("must start with https://");
  const std::string_view rest = url.substr(scheme_end + 3);
  const std::size_t authority_end = std::min(rest.find_first_of("/?#"), rest.size());
  const std::string_view authority = rest.substr(0, authority_end);
  if (authority.empty()) return fail("has no host");
  if (authority.find('@') != std::string_view::npos) return fail("must not hold user info (user@)");
  std::string_view after = rest.substr(authority_end);
  if (const std::size_t hash = after.find('#'); hash != std::string_view::npos) after = after.substr(0, hash);
  const std::size_t question = after.find('?');
  std::string_view path = after.substr(0, question);
  const std::string_view query =
      question == std::string_view::npos ? std::string_view() : after.substr(question + 1);

  // /api[/vN]/webhooks/ID/TOKEN[/]
  if (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  std::vector<std::string_view> segments;
  for (std::size_t pos = 0; pos <= path.size();) {
    const std::size_t slash = std::min(path.find('/', pos), path.size());
    segments.push_back(path.substr(pos, slash - pos));
    pos = slash + 1;
  }
  // segments[0] is "" (the path starts with '/').
  std::size_t next = 2;
  const bool api = segments.size() >= 2 && segments[0].empty() && segments[1] == "api";
  if (api && segments.size() >= 3 && segments[2].size() >= 2 && segments[2][0] == 'v' &&
      IsDiscordSnowflake(segments[2].substr(1))) {
    next = 3;  // a version: replaced by ours
  }
  if (!api || segments.size() != next + 3 || segments[next] != "webhooks") {
    return fail("does not have the path /api[/v<N>]/webhooks/<id>/<token>");
  }
  const std::string_view id = segments[next + 1];
  const std::string_view token = segments[next + 2];
  if (!IsDiscordSnowflake(id)) return fail("has a webhook id that is not a number");
  if (token.empty() || !std::all_of(token.begin(), token.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
               c == '_';
      })) {
    return fail("has a webhook token with characters other than letters, digits, '-' and '_'");
  }

  // [discord-webhook]: wait=true makes Discord confirm (or refuse) the message instead of
  // answering 204 before it is saved; thread_id and other parameters are kept.
  std::string out(scheme);
  out.append("://")
      .append(authority)
      .append("/api/v10/webhooks/")
      .append(id)
      .append("/")
      .append(token)
      .append("?");
  for (std::size_t pos = 0; pos < query.size();) {
    const std::size_t amp = std::min(query.find('&', pos), query.size());
    const std::string_view param = query.substr(pos, amp - pos);
    pos = amp + 1;
    const std::string_view key = param.substr(0, param.find('='));
    if (param.empty() || key == "wait") continue;
    out.append(param).append("&");
  }
  out.append("wait=true");
  return out;
}

std::string BuildDiscordPayload(const TaskResult& r, const DiscordOptions& options) {
  const Escape no_escape;  // Discord values are not markdown-escaped (code fences are defused)

  // Mentions: content only, configured ids only, failures only; allowed_mentions names exactly
  // those, and "parse": [] keeps everything else in the text (an "@everyone" in the output, a
  // "<@123>" in the task) inert. [discord-mentions]
  std::string content;
  json users = json::array();
  json roles = json::array();
  if (IsFailure(r.status)) {
    auto add = [&](const std::vector<std::string>& ids, json& list, std::string_view prefix) {
      for (const std::string& id : ids) {
        if (list.size() >= kDiscordMaxAllowedMentionIds) break;
        if (!IsDiscordSnowflake(id) || std::find(list.begin(), list.end(), id) != list.end()) continue;
        std::string mention = std::string(prefix) + id + ">";
        // [discord-webhook]: content at most 2000 characters (ASCII here: bytes == chars).
        if (content.size() + mention.size() + 1 > kDiscordContentMaxChars) break;
        content += (content.empty() ? "" : " ") + mention;
        list.push_back(id);
      }
    };
    add(options.mention_users, users, "<@");
    add(options.mention_roles, roles, "<@&");
  }
  json allowed = {{"parse", json::array()}};
  if (!users.empty()) allowed["users"] = std::move(users);
  if (!roles.empty()) allowed["roles"] = std::move(roles);

  // [discord-embed] limits, each field on its own, then the 6000 total: the description (which
  // holds the output) gets what the others leave.
  const std::string title =
      CutRendered(RenderTitle(options.templates, r, no_escape).text, kDiscordTitleMaxChars, false);
  std::string status = TaskStatusName(r.status);
  if (r.will_retry) status += " (will retry)";
  std::vector<std::pair<std::string, std::string>> fields = {{"Status", status}};
  if (r.receive_count > 0) fields.emplace_back("Attempt", std::to_string(r.receive_count));
  fields.emplace_back("Duration", FormatDurationForHumans(r.duration));
  static_assert(3 <= kDiscordMaxFields);
  std::string footer;
  if (!r.message_id.empty()) footer = "message " + PlainValue(r.message_id, kMessageIdMaxChars);
  if (!IsEpoch(r.scheduled_at))
    footer += (footer.empty() ? "" : " \u00B7 ") + ("scheduled " + FormatRfc3339Utc(r.scheduled_at));
  footer = CutRendered(footer, std::min(kDiscordFooterOwnMaxChars, kDiscordFooterMaxChars), false);

  std::size_t others = Utf8Length(title) + Utf8Length(footer);
  json field_array = json::array();
  for (auto& [name, value] : fields) {
    name = CutRendered(name, kDiscordFieldNameMaxChars, false);
    value = CutRendered(value, kDiscordFieldValueMaxChars, false);
    others += Utf8Length(name) + Utf8Length(value);
    field_array.push_back({{"name", name}, {"value", value}, {"inline", true}});
  }
  const std::size_t description_max =
      std::min(kDiscordDescriptionMaxChars,
               others < kDiscordEmbedTotalMaxChars ? kDiscordEmbedTotalMaxChars - others : 0);
  const std::string description =
      RenderBodyFitted(Platform::kDiscord, options.templates, r, no_escape, description_max);

  // Discord: 0x2EB886 green, 0xA30200 red, 0xDAA038 orange, 0xE01E5A crimson (as on Slack).
  int color = 0xA30200;
  switch (r.status) {
    case TaskStatus::kSuccess:
      color = 0x2EB886;
      break;
    case TaskStatus::kFailure:
      break;
    case TaskStatus::kTimeout:
      color = 0xDAA038;
      break;
    case TaskStatus::kInvalid:
      color = 0xE01E5A;
      break;
  }
  json embed = {{"color", color}, {"fields", std::move(field_array)}};
  // Empty strings are refused (50035), so absent values are left out.
  if (!TrimAscii(title).empty()) embed["title"] = title;
  if (!TrimAscii(description).empty()) embed["description"] = description;
  if (!IsEpoch(r.finished_at)) embed["timestamp"] = FormatRfc3339UtcMillis(r.finished_at);
  if (!footer.empty()) embed["footer"] = {{"text", footer}};

  json payload = {{"content", std::move(content)},
                  {"allowed_mentions", std::move(allowed)},
                  {"embeds", json::array({std::move(embed)})}};
  // [discord-users]: webhook names are 1-80 characters.
  const std::string username = SanitizeUtf8(options.username);
  if (!TrimAscii(username).empty()) {
    payload["username"] = Truncate(TrimAscii(username), kDiscordUsernameMaxChars, false, false);
  }
  return Dump(payload);
}

DeliveryVerdict ClassifyDiscordResponse(const HttpResponse& response) {
  DeliveryVerdict verdict;
  const int status = response.status;
  const json body = ParseJsonObject(response.body);

  // [discord-rate]: an empty bucket on any reply means: wait Reset-After before the next request.
  std::optional<milliseconds> bucket_wait;
  if (const auto remaining = response.Header("X-RateLimit-Remaining");
      remaining && TrimAscii(*remaining) == "0") {
    if (const auto reset_after = response.Header("X-RateLimit-Reset-After"))
      bucket_wait = ParseSeconds(*reset_after);
  }
  if (bucket_wait) verdict.retry_after = *bucket_wait;

  if (status >= 200 && status < 300) {
    verdict.kind = DeliveryVerdict::Kind::kDelivered;
    return verdict;
  }

  std::string error = "Discord answered " + std::to_string(status);
  if (status == 429) {
    // [discord-rate]: the body's retry_after (float seconds) is the most precise; the headers
    // stand in when the body is missing or not JSON (e.g. an HTML page from a proxy).
    verdict.kind = DeliveryVerdict::Kind::kRateLimited;
    std::optional<milliseconds> wait;
    if (body.is_object() && body.contains("retry_after")) wait = JsonSeconds(body["retry_after"]);
    if (!wait) {
      if (const auto h = response.Header("X-RateLimit-Reset-After")) wait = ParseSeconds(*h);
    }
    if (!wait) {
      if (const auto h = response.Header("Retry-After")) wait = ParseSeconds(*h);
    }
    verdict.retry_after = wait.value_or(kDefaultRetryAfter);
    const auto global_header = response.Header("X-RateLimit-Global");
    const auto scope_header = response.Header("X-RateLimit-Scope");
    verdict.global = (body.is_object() && body.contains("global") && body["global"].is_boolean() &&
                      body["global"].get<bool>()) ||
                     (global_header && EqualsNoCase(TrimAscii(*global_header), "true")) ||
                     (scope_header && EqualsNoCase(TrimAscii(*scope_header), "global"));
    verdict.error =
        error + " (retry after " + FormatSeconds(verdict.retry_after) + (verdict.global ? ", global)" : ")");
    return verdict;
  }

  std::int64_t code = -1;
  if (body.is_object()) {
    if (const auto it = body.find("code"); it != body.end() && it->is_number_integer())
      code = it->get<std::int64_t>();
    std::string message;
    if (const auto it = body.find("message"); it != body.end() && it->is_string())
      message = BodyExcerpt(it->get<std::string>());
    if (code >= 0 || !message.empty()) {
      error += " (";
      if (code >= 0) error += "code " + std::to_string(code) + (message.empty() ? "" : " ");
      if (!message.empty()) error += "\"" + message + "\"";
      error += ")";
    }
    // 50035 Invalid Form Body says which field in "errors".
    if (const auto it = body.find("errors"); it != body.end()) error += " errors: " + BodyExcerpt(Dump(*it));
  } else if (const std::string excerpt = BodyExcerpt(response.body); !excerpt.empty()) {
    error += " \"" + excerpt + "\"";
  }

  // [discord-errors]: 10015 Unknown Webhook (deleted), 50027 Invalid Webhook Token.
  if (code == 10015 || code == 50027 || status == 401 || status == 403 || status == 404 || status == 410) {
    verdict.kind = DeliveryVerdict::Kind::kDead;
  } else if (status >= 500 || status == 408) {
    verdict.kind = DeliveryVerdict::Kind::kRetry;
  } else if (status >= 400) {
    verdict.kind = DeliveryVerdict::Kind::kRejected;
  } else {
    verdict.kind = DeliveryVerdict::Kind::kRetry;  // 1xx, 3xx
  }
  verdict.error = std::move(error);
  return verdict;
}

}  // namespace taskpipe
