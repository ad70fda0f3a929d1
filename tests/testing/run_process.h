// Runs a real child process for end-to-end tests of the taskpipe executable: argv (no shell),
// optional stdin, extra environment; collects stdout, stderr and the exit status.
#ifndef TASKPIPE_TESTS_TESTING_RUN_PROCESS_H_
#define TASKPIPE_TESTS_TESTING_RUN_PROCESS_H_

#include <functional>
#include <map>
#include <memory>
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

// A child that runs in the background while the test talks to it: standard output and error go
// to files that the test may read at any time; stdin is /dev/null. The destructor SIGKILLs and
// reaps a child that is still running.
class BackgroundProcess {
 public:
  // Starts argv[0] (a path, no PATH search) with options.env/unset_env/cwd; output to
  // `out_path` and `err_path` (truncated). started() is false when fork/exec failed.
  BackgroundProcess(const std::vector<std::string>& argv, const ProcessOptions& options, std::string out_path,
                    std::string err_path);
  ~BackgroundProcess();
  BackgroundProcess(const BackgroundProcess&) = delete;
  BackgroundProcess& operator=(const BackgroundProcess&) = delete;

  bool started() const { return pid_ > 0; }
  int pid() const { return pid_; }
  void Signal(int signal);
  // Waits up to `timeout_ms` for the child to exit; true when it did (then exit_code()/signal()).
  bool Wait(int timeout_ms);
  int exit_code() const { return exit_code_; }
  int signal() const { return signal_; }
  std::string Out() const;  // what it wrote to stdout so far
  std::string Err() const;

 private:
  int pid_ = -1;
  bool reaped_ = false;
  int exit_code_ = -1;
  int signal_ = 0;
  std::string out_path_;
  std::string err_path_;
};

// `binary` in the background, in the source folder unless options.cwd says.
std::unique_ptr<BackgroundProcess> StartBinary(const std::string& binary, const std::vector<std::string>& args,
                                               const ProcessOptions& options, const std::string& out_path,
                                               const std::string& err_path);
// The taskpipe binary under test in the background, in the source folder unless options.cwd says.
std::unique_ptr<BackgroundProcess> StartTaskpipe(const std::vector<std::string>& args, const ProcessOptions& options,
                                                 const std::string& out_path, const std::string& err_path);

// Polls `done` every 20 ms until it returns true or `timeout_ms` passes; returns its last value.
// For tests that wait on another process (a file appearing, a queue draining): real time only.
bool WaitUntilTrue(const std::function<bool()>& done, int timeout_ms);

}  // namespace taskpipe::testing

#endif  // TASKPIPE_TESTS_TESTING_RUN_PROCESS_H_
