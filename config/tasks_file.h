// Tasks files: the list of tasks a job sends each time it fires, kept outside the config file
// (a job's "tasks_file" key). Two forms:
//   - a JSON array of strings and objects, when the first character after blanks and // or /* */
//     comments is '[' (comments allowed, as in the config file);
//   - otherwise one task per line: a line starting with '{' must be a JSON object and one
//     starting with '"' a JSON string; any other line is taken as plain text, a string task
//     (surrounding blanks trimmed). Blank lines and lines whose first non-blank character is '#'
//     are skipped; CRLF line ends are accepted. (A plain-text task that starts with '#', '{' or
//     '"' is written as a JSON string: "\"#1 priority\"".)
// A tasks file is data: ${VAR} is not expanded in it. Pure functions except for the file
// reads; thread-safe.
#ifndef TASKPIPE_CONFIG_TASKS_FILE_H_
#define TASKPIPE_CONFIG_TASKS_FILE_H_

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace taskpipe {

// Files larger than this are refused rather than read whole into memory.
inline constexpr size_t kMaxTextFileBytes = 64 << 20;

// Parses the text of a tasks file; `source_name` names it in messages. An empty file, or one
// holding only blank and comment lines, yields no tasks (the config loader decides whether that
// is acceptable). On failure returns kInvalidArgument whose message has one line per problem
// (at most 20), each starting with the source name and line: "tasks.txt:7: line starts with '{'
// but is not a JSON object: ...", "tasks.json:3:9: syntax error ..." (the column where the parser
// stopped: the end of the offending token), or for an array element
// "tasks.json: [2]: a task must be a string or an object, got 5".
StatusOr<std::vector<nlohmann::json>> ParseTasksText(std::string_view text, std::string_view source_name);

// Reads the file at `path` and parses it with ParseTasksText, naming it by `path`. A file that
// cannot be read gives kInvalidArgument: `cannot read tasks file "x.txt": No such file or directory`.
StatusOr<std::vector<nlohmann::json>> LoadTasksFile(const std::string& path);

// Reads a whole text file (at most kMaxTextFileBytes). On failure returns kInvalidArgument
// `cannot read <what> "<path>": <reason>`, e.g. `cannot read config "x.json": No such file or
// directory`. Shared by the config and tasks-file loaders.
StatusOr<std::string> ReadTextFile(const std::string& path, std::string_view what);

}  // namespace taskpipe

#endif  // TASKPIPE_CONFIG_TASKS_FILE_H_
