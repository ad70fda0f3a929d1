// Loads taskpipe's configuration from JSON (DESIGN.md, "Configuration") into the option structs
// of config/config.h, and validates it, reporting every problem with its path in one go:
//   queue.visiblity_timeout: unknown key (did you mean "visibility_timeout"?)
//   consumer.workers: expected an integer, got "eight"
//   jobs[1].handler.timeout: expected a duration like "30s", got "soon"
//
// The text may hold // and /* */ comments. String values may use the environment:
//   ${VAR}           the variable's value; an unset variable is a problem that names it
//   ${VAR:-default}  the default when VAR is unset or empty (shell semantics); the default may
//                    itself use ${...}, expanded only when it is used: "${A:-${B:-x}}"
//   $$               a literal '$' ("$${A}" is the text "${A}"); a '$' before anything else is
//                    kept as is
// Expansion happens after parsing, so a value cannot break the JSON. It applies to every string
// value the loader reads, inside tasks too, never to keys or to tasks files.
//
// Relative "tasks_file" paths are resolved against the config file's folder (the current folder
// when there is no file) and read and checked at load time.
//
// Functions here are thread-safe if the LoadOptions hooks are. No exception escapes them.
#ifndef TASKPIPE_CONFIG_CONFIG_JSON_H_
#define TASKPIPE_CONFIG_CONFIG_JSON_H_

#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "config/config.h"

namespace taskpipe {

struct ConfigProblem {
  std::string path;     // "jobs[1].handler.timeout"; "" for the file as a whole
  std::string message;  // "expected a duration like \"30s\", got \"soon\""
  int line = 0;         // syntax errors only: where, counting from 1
  int column = 0;

  // "jobs[1].handler.timeout: expected ...", "line 3, column 5: syntax error ...", or the message.
  std::string ToString() const;
};

struct LoadOptions {
  // Looks up an environment variable for ${VAR}; nullopt = unset. Empty: ::getenv.
  std::function<std::optional<std::string>(std::string_view name)> getenv;

  // Handler types a job may name: the built-ins, plus any the program registered from C++
  // (insert them here). Unknown types are reported with a "did you mean".
  std::set<std::string, std::less<>> handler_types = {"exec", "http", "log"};

  // Deep check of a job's "schedule" and "timezone" (producer/schedule.h's parser): returns an
  // error message, reported at "jobs[i].schedule", or nullopt when they are fine. Called only for
  // jobs with a non-empty schedule whose schedule and timezone are strings. Empty: not checked.
  std::function<std::optional<std::string>(const JobConfig& job)> validate_schedule;

  // Deep check of one notify target (its URL's shape, templates, mention ids): returns problems as
  // (key within the target, message), e.g. {"title", "unknown placeholder {jb} ..."}; reported at
  // "notify.targets.NAME.KEY". Called for targets whose keys all parsed. Empty: not checked.
  std::function<std::vector<std::pair<std::string, std::string>>(const NotifyTargetConfig& target)>
      validate_notify_target;

  // Reads a tasks file (path already resolved). Empty: ReadTextFile(path, "tasks file").
  std::function<StatusOr<std::string>(const std::string& path)> read_file;
};

// Parses and validates `text`; `source_path` is the file it came from ("" if none), used to
// resolve relative tasks_file paths and stored in Config::source_path. Fills *config as far as it
// can and returns every problem found, in document order; empty means *config is valid.
std::vector<ConfigProblem> ParseConfigProblems(std::string_view text, const LoadOptions& options,
                                               const std::string& source_path, Config* config);

// As ParseConfigProblems, for the file at `path`. A file that cannot be read is one problem:
// `cannot read config "x.json": No such file or directory`.
std::vector<ConfigProblem> LoadConfigFileProblems(const std::string& path, const LoadOptions& options,
                                                  Config* config);

// The config, or kInvalidArgument whose message is a first line naming the file and counting the
// problems, then one "path: message" line per problem:
//   invalid config "taskpipe.json" (2 problems):
//   queue.visibility_timeout: 13h is over SQS's maximum of 12h
//   jobs[0].notify.targets[0]: unknown notify target "team-slak" (did you mean "team-slack"? ...)
StatusOr<Config> ParseConfig(std::string_view text, const LoadOptions& options = {},
                             std::string source_path = "");

// As ParseConfig, for the file at `path`. An unreadable file also fails with kInvalidArgument:
// `cannot read config "x.json": No such file or directory`.
StatusOr<Config> LoadConfigFile(const std::string& path, const LoadOptions& options = {});

// The kInvalidArgument status ParseConfig returns for `problems` (OK if there are none).
Status ConfigProblemsToStatus(const std::vector<ConfigProblem>& problems, const std::string& source_path);

}  // namespace taskpipe

#endif  // TASKPIPE_CONFIG_CONFIG_JSON_H_
