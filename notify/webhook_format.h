// What a Slack or Discord notification looks like, and what the platforms' replies mean: pure
// functions (no threads, no I/O, no clock), safe to call concurrently, none of which throws (short
// of running out of memory).
//
//  - Text helpers: UTF-8 repair, code-point-safe truncation that says it truncated, Slack escaping,
//    code-fence defusing, human durations.
//  - Templates: per-target title/body text with {placeholders}; ValidateTemplate() for the config
//    loader, RenderTemplate() for the builders.
//  - Payload builders (BuildSlackPayload, BuildDiscordPayload): compact JSON that stays within every
//    documented limit whatever the TaskResult holds (1 MiB of output, 10k-character job names,
//    invalid UTF-8), in which nothing taken from the task can mention anyone. Mentions come only
//    from the target's configuration, and only for failure statuses (kFailure, kTimeout, kInvalid).
//  - Reply readers (ClassifySlackResponse, ClassifyDiscordResponse): DeliveryVerdict (notify.h).
//
// Lengths are counted in Unicode code points ("characters" below), as the platforms count them.
// Nothing here ever puts a webhook URL, or a Discord webhook's id or token, in a returned error.
#ifndef TASKPIPE_NOTIFY_WEBHOOK_FORMAT_H_
#define TASKPIPE_NOTIFY_WEBHOOK_FORMAT_H_

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/task_result.h"
#include "net/http_client.h"
#include "notify/notify.h"

namespace taskpipe {

// ---------------------------------------------------------------------------------------------
// Platform limits (characters). Each is cited where it is enforced, in webhook_format.cc.

// Slack: section block text (Block Kit reference), top-level "text" (we keep it far below Slack's
// 40,000 truncation point), blocks per message, context block element text.
inline constexpr std::size_t kSlackSectionTextMaxChars = 3000;
inline constexpr std::size_t kSlackTextMaxChars = 3000;
inline constexpr std::size_t kSlackMaxBlocks = 50;
inline constexpr std::size_t kSlackContextTextMaxChars = 3000;

// Discord: message content; embed title, description, fields, field name/value, footer text, the
// sum over an embed; webhook username; ids per allowed_mentions list.
inline constexpr std::size_t kDiscordContentMaxChars = 2000;
inline constexpr std::size_t kDiscordTitleMaxChars = 256;
inline constexpr std::size_t kDiscordDescriptionMaxChars = 4096;
inline constexpr std::size_t kDiscordMaxFields = 25;
inline constexpr std::size_t kDiscordFieldNameMaxChars = 256;
inline constexpr std::size_t kDiscordFieldValueMaxChars = 1024;
inline constexpr std::size_t kDiscordFooterMaxChars = 2048;
inline constexpr std::size_t kDiscordEmbedTotalMaxChars = 6000;
inline constexpr std::size_t kDiscordUsernameMaxChars = 80;
inline constexpr std::size_t kDiscordMaxAllowedMentionIds = 100;

// ---------------------------------------------------------------------------------------------
// Text helpers

// `text` as valid UTF-8: every ill-formed sequence (a byte that cannot start a character, a
// truncated sequence, an overlong encoding, a UTF-16 surrogate, anything above U+10FFFF) becomes
// U+FFFD, one per maximal ill-formed subpart as Unicode recommends (so "\xC0\xAF" gives two, and a
// truncated "\xF0\x9F" one). "\r\n" becomes "\n"; NUL and the other C0 control characters except
// "\n" and "\t" are dropped, and so are whole ANSI CSI escape sequences ("\x1b[31m"), which
// handler output is full of and which would otherwise leave "[31m" behind.
std::string SanitizeUtf8(std::string_view text);

// The number of code points in `text`. REQUIRES: `text` is valid UTF-8 (otherwise the count is of
// bytes that are not continuation bytes).
std::size_t Utf8Length(std::string_view text);

// The markers TruncateUtf8() adds; both are 13 characters.
inline constexpr std::string_view kTruncatedHeadMarker = "\u2026 (truncated)";  // "… (truncated)"
inline constexpr std::string_view kTruncatedTailMarker = "(truncated) \u2026";  // "(truncated) …"

// `text` when it has at most `max_chars` characters. Otherwise a cut that says so, in at most
// `max_chars` characters, the marker included: the head plus kTruncatedHeadMarker, or (keep_tail,
// for handler output whose end matters) kTruncatedTailMarker plus the tail. Cuts only between code
// points. When `max_chars` is too small to hold the marker, the head (or tail) is cut without one.
// REQUIRES: `text` is valid UTF-8 (see SanitizeUtf8).
std::string TruncateUtf8(std::string_view text, std::size_t max_chars, bool keep_tail = false);

// Slack mrkdwn escaping: '&' -> "&amp;", '<' -> "&lt;", '>' -> "&gt;" and nothing else (Slack's
// formatting reference names only these three), so that "<!channel>" or "<@U123>" in task output
// shows as text and mentions no one.
std::string EscapeSlack(std::string_view text);

// `text` made safe to put inside a ``` code block: in every run of three or more backticks a
// U+200B ZERO WIDTH SPACE goes between each two backticks, so the run can neither close the block
// nor open a new one. Shorter runs are left alone.
std::string DefuseCodeFences(std::string_view text);

// "850 ms", "12.3 s" (tenths, rounded down), "4 min 05 s", "2 h 03 min" (hours keep counting past
// a day: "49 h 00 min"). Negative durations read "0 ms".
std::string FormatDurationForHumans(std::chrono::milliseconds duration);

// ---------------------------------------------------------------------------------------------
// Templates
//
// A template is text with placeholders, each replaced by a value from the TaskResult:
//   {job}          the job name ("(unknown job)" when the result names none), <= 200 characters
//   {task}         the task as compact JSON, <= 500 characters
//   {status}       "success", "failure", "timeout" or "invalid"
//   {duration}     FormatDurationForHumans(duration)
//   {attempt}      receive_count
//   {message_id}   <= 200 characters
//   {output}       the tail of the handler's output, code-fence-defused (see RenderTemplate)
//   {error}        <= 1,000 characters; "" on success
//   {scheduled_at} {finished_at}   RFC 3339 UTC ("2026-03-08T07:00:00Z"); "" when unknown (epoch)
//   {retry}        "will retry" when will_retry, else ""
// "{{" and "}}" stand for literal braces; a lone "}" is also taken literally.

// OK, or kInvalidArgument naming the fault: an unknown placeholder (the message quotes it and
// lists the known ones) or a '{' that is never closed (with its offset). The config loader calls
// this for every configured title and body.
Status ValidateTemplate(std::string_view tmpl);

// Renders `tmpl`. Values are sanitized (SanitizeUtf8), cut to the lengths listed above, code-fence
// defused, and then passed through `escape` (an empty function means no escaping); the template
// text itself is not escaped, so a Slack template may hold links such as "<https://x|x>".
// {output} is trimmed of trailing whitespace and leading blank lines, and keeps its tail: at most
// `max_output_chars` characters, kTruncatedTailMarker included when cut (0 renders it empty). An
// unknown placeholder or an unclosed '{' is rendered literally (ValidateTemplate rejects both at
// config load).
std::string RenderTemplate(std::string_view tmpl, const TaskResult& r,
                           const std::function<std::string(std::string_view)>& escape,
                           std::size_t max_output_chars);

// A target's message text; "" selects the platform's default. Defaults:
//   title  "<symbol> {job}: {status}", plus " (will retry)" when the failure will be retried;
//          symbol ✅ success, ❌ failure, ⏱️ timeout, ⚠️ invalid.
//   body   the error, the task and the output's tail in a code block, each line only when there
//          is something to show (Slack adds the duration; Discord shows it in a field).
// A custom title or body is rendered as given, without symbol or conditional lines.
struct MessageTemplates {
  std::string title{};
  std::string body{};
};

// ---------------------------------------------------------------------------------------------
// Slack (incoming webhooks)

struct SlackOptions {
  MessageTemplates templates{};
  // Who to mention when the status is a failure (kFailure, kTimeout, kInvalid): user ids "U…" or
  // "W…" (<@U…>), user group ids "S…" (<!subteam^S…>), "here", "channel" or "everyone"
  // (<!here>, ...). Entries that are none of these are skipped (IsSlackMentionId).
  std::vector<std::string> mention_on_failure{};
};

// Whether `id` is an entry SlackOptions::mention_on_failure accepts. For the config loader.
bool IsSlackMentionId(std::string_view id);

// The JSON body for a Slack incoming webhook:
//   {"text": <mentions (failure statuses only)> <rendered title>,
//    "attachments": [{"color": "#2eb886" success | "#a30200" failure | "#daa038" timeout |
//                              "#e01e5a" invalid,
//                     "blocks": [section (mrkdwn body, when not empty),
//                                context (message id, attempt, scheduled_at)]}],
//    "unfurl_links": false, "unfurl_media": false}
// Everything taken from the TaskResult is EscapeSlack()ed. The mentions go at the start of the
// top-level "text": Slack clients notify for mentions there, not reliably for mentions inside
// attachments. Lengths: "text" <= kSlackTextMaxChars, section <= kSlackSectionTextMaxChars (the
// output's tail shrinks first), context <= kSlackContextTextMaxChars.
std::string BuildSlackPayload(const TaskResult& r, const SlackOptions& options);

// Reads an incoming webhook's reply:
//   2xx (body "ok")                                            -> kDelivered
//   429                                                        -> kRateLimited, retry_after from
//        Retry-After (seconds, integer or decimal; 1 s when absent, an HTTP-date, or unreadable)
//   5xx (e.g. 500 rollup_error), 408                           -> kRetry
//   401, 403, 404, 410, or a body no_service, no_team, invalid_token, team_disabled,
//   channel_not_found, channel_is_archived, action_prohibited,
//   posting_to_general_channel_denied                          -> kDead
//   any other 4xx (invalid_payload, no_text, too_many_attachments, user_not_found, ...)
//                                                              -> kRejected
//   anything else (1xx, 3xx)                                   -> kRetry
// `error` quotes at most ~200 bytes of the body, sanitized, on one line, with known secret shapes
// redacted; never the URL.
DeliveryVerdict ClassifySlackResponse(const HttpResponse& response);

// ---------------------------------------------------------------------------------------------
// Discord (Execute Webhook)

struct DiscordOptions {
  MessageTemplates templates{};
  // Snowflakes (decimal digits) of users and roles to mention on failure statuses. Entries that
  // are not snowflakes are skipped (IsDiscordSnowflake); at most kDiscordMaxAllowedMentionIds of
  // each are used.
  std::vector<std::string> mention_users{};
  std::vector<std::string> mention_roles{};
  // Overrides the webhook's name when not empty (cut to kDiscordUsernameMaxChars). Discord refuses
  // some names (containing "clyde" or "discord"): the config loader should check.
  std::string username{};
};

// Whether `id` is a Discord snowflake: 1 to 20 decimal digits.
bool IsDiscordSnowflake(std::string_view id);

// The URL to POST to for a configured Discord webhook URL
// http(s)://HOST[:PORT]/api[/vN]/webhooks/ID/TOKEN[/][?QUERY][#FRAGMENT]: the same scheme and
// authority, the path /api/v10/webhooks/ID/TOKEN, the query's other parameters in order (e.g.
// thread_id) and then wait=true (an existing wait= is replaced), no fragment. Any other shape is
// kInvalidArgument saying what shape is expected; the message never contains the id or the token.
StatusOr<std::string> DiscordRequestUrl(std::string_view configured_url);

// The JSON body for Execute Webhook:
//   {"content": <mentions, failure statuses only> or "",
//    "allowed_mentions": {"parse": [], "users": [...], "roles": [...]},   // users/roles only
//                                                    // when mentioning, only the configured ids
//    "embeds": [{"title", "description" (when not empty), "color": integer, "timestamp" (ISO 8601
//                of finished_at, unless epoch), "fields": [Status, Attempt, Duration],
//                "footer": {"text": message id and scheduled_at}}],
//    "username" (when set)}
// "parse": [] is always present, so nothing in the text (an "@everyone" in the output) pings.
// Values are not markdown-escaped (except code fences): mention safety is allowed_mentions' job.
// Every limit above holds; when the embed would exceed kDiscordEmbedTotalMaxChars, the description
// shrinks (the output's tail first).
std::string BuildDiscordPayload(const TaskResult& r, const DiscordOptions& options);

// Reads an Execute Webhook reply (JSON bodies are parsed leniently; malformed ones are fine):
//   2xx                             -> kDelivered
//   429                             -> kRateLimited, retry_after from the body's "retry_after"
//        (seconds, fractional), else X-RateLimit-Reset-After, else Retry-After, else 1 s; `global`
//        from the body's "global", X-RateLimit-Global: true, or X-RateLimit-Scope: global
//   5xx, 408                        -> kRetry
//   401, 403, 404, 410, or a body code 10015 (Unknown Webhook) / 50027 (Invalid Webhook Token)
//                                   -> kDead
//   any other 4xx (e.g. 400 code 50035 Invalid Form Body) -> kRejected, `error` naming the code
//        and message
//   anything else (1xx, 3xx)        -> kRetry
// Any reply with X-RateLimit-Remaining: 0 and a readable X-RateLimit-Reset-After sets retry_after
// to the latter (a 2xx stays kDelivered) so that the sender waits before its next request.
// Waits are capped at one hour.
DeliveryVerdict ClassifyDiscordResponse(const HttpResponse& response);

}  // namespace taskpipe

#endif  // TASKPIPE_NOTIFY_WEBHOOK_FORMAT_H_
