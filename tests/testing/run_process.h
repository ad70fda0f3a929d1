// Runs a real child process for end-to-end tests of the taskpipe executable: argv (no shell),
// optional stdin, extra environment; collects stdout, stderr and the exit status.
#ifndef TASKPIPE_TESTS_TESTING_RUN_PROCESS_H_
#define TASKPIPE_TESTS_TESTING_RUN_PROCESS_H_

#include <map>
#include <string>
#include <vector>

namespace taskpipe::testing {

struct ProcessResult {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  std::string out;
  std::string err;
};

struct ProcessOptions {
  std::string stdin_text;
  std::map<std::string, std::string> env;   // set on top of the parent's environment
  std::vector<std::string> unset_env;       // removed from the parent's environment
  std::string cwd;                          // "" = the parent's
  int timeout_seconds = 60;                 // killed (SIGKILL) after this
};

ProcessResult RunProcess(const std::vector<std::string>& argv, const ProcessOptions& options = {});

// Runs the taskpipe binary under test with `args`.
ProcessResult RunTaskpipe(const std::vector<std::string>& args, const ProcessOptions& options = {});

}  // namespace taskpipe::testing

#endif  // TASKPIPE_TESTS_TESTING_RUN_PROCESS_H_
