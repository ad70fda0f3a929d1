// Helpers shared by the JSON config loader (config_json.h) and the tasks-file loader
// (tasks_file.h): parsing JSON text with comments into a value with precise problems, and the
// path and value spellings used in their messages. Pure functions; thread-safe.
#ifndef TASKPIPE_CONFIG_JSON_TEXT_H_
#define TASKPIPE_CONFIG_JSON_TEXT_H_

#include <cstddef>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace taskpipe {

// Objects and arrays nested deeper than this are rejected: nlohmann::json copies and
// serialises recursively, so unbounded nesting in a file would be a stack overflow later.
inline constexpr int kMaxJsonDepth = 64;

struct JsonTextProblem {
  std::string path;  // "" for the text as a whole (syntax errors)
  std::string message;
  // Syntax errors: where the parser stopped (the end of the offending token), counting from 1;
  // the column counts characters, not bytes.
  int line = 0;
  int column = 0;
};

// Parses `text` as one JSON value; `//` and `/* */` comments are allowed. Returns nullopt on a
// syntax error, reported in *problems with its line and column ("syntax error while parsing
// object key - unexpected '}'; expected string literal"). A value is still
// returned, with problems added, for duplicate object keys (at the key's path; JSON would keep
// the last one silently) and for nesting deeper than kMaxJsonDepth (that subtree is dropped).
// Never throws.
std::optional<nlohmann::json> ParseJsonText(std::string_view text, std::vector<JsonTextProblem>* problems);

// Paths as the loaders print them: "queue.visibility_timeout", "jobs[1].handler",
// "notify.targets[\"my target\"]" (keys that are not [A-Za-z0-9_-]+ are quoted).
std::string JsonPathKey(std::string_view parent, std::string_view key);
std::string JsonPathIndex(std::string_view parent, size_t index);

// `text` in double quotes with JSON-style escapes for quotes, backslashes and control
// characters, bytes that are not UTF-8 as \xNN, and cut to about 60 characters ("...").
std::string QuoteText(std::string_view text);

// A value as messages show it after "got": "\"eight\"", "8.5", "true", "null", "an object",
// "an array".
std::string DescribeJsonValue(const nlohmann::json& value);

// What ScanJsonBrackets() saw.
struct JsonBrackets {
  bool too_deep = false;  // objects and arrays somewhere in the text nest more than max_depth deep
  // Just past the bracket that closes the value opening at text[0], when text[0] is '{' or '['
  // and that bracket is in the text; 0 otherwise.
  std::size_t end = 0;
};

// Walks `text` by its brackets and strings alone (escapes skipped, nothing else checked): cheap
// enough to run before parsing, so that a hostile body never becomes a deep tree for nlohmann
// to copy and serialise recursively. Brackets inside strings do not count.
JsonBrackets ScanJsonBrackets(std::string_view text, int max_depth);

// Whether `text` is well-formed UTF-8 (nlohmann::json::dump() throws on anything else).
bool IsValidUtf8(std::string_view text);

}  // namespace taskpipe

#endif  // TASKPIPE_CONFIG_JSON_TEXT_H_
