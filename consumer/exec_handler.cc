#include "consumer/exec_handler.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/duration.h"
#include "common/quote.h"
#include "consumer/output_tail.h"

extern char** environ;

namespace taskpipe {
namespace {

using std::chrono::milliseconds;

// The clock is re-read at least this often, so that a deadline is noticed even when the Clock is
// not the system's (a FakeClock moves between two polls) and a lost wake-up costs little.
constexpr milliseconds kMaxPollInterval{100};
// Without a pidfd (kernels before 5.3) the child's exit is not pollable: check it this often.
constexpr milliseconds kNoPidfdPollInterval{10};
// Reads per wake-up before time and the child are checked again: a child printing without pause
// must not keep the loop from noticing its deadline.
constexpr int kReadsPerWake = 8;
// After the child exits: at most this many reads of what it (and its group) left in the pipe. The
// writers are dead by then, so this only bounds a writer that escaped the group.
constexpr int kMaxDrainReads = 32;
// Linux refuses to exec with one environment string over MAX_ARG_STRLEN (32 pages, 128 KiB, with
// the name and NUL): larger task JSON is left out of TASKPIPE_TASK (it is always on stdin).
constexpr std::size_t kMaxTaskEnvValueBytes = 128 * 1024 - 64;

// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Close(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void Reset(int fd) {
    Close();
    fd_ = fd;
  }
  void Close() {
    if (fd_ >= 0) ::close(fd_);  // Linux frees the descriptor even when close() reports EINTR
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

std::string ErrnoText(int err) {
  const char* text = strerrordesc_np(err);  // thread-safe, unlike strerror()
  return text != nullptr ? text : "error " + std::to_string(err);
}

// "SIGKILL"; "signal 64" for one without a name.
std::string SignalName(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev != nullptr ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

std::string TaskJson(const HandlerTask& task) {
  if (!task.task_json.empty()) return task.task_json;
  return task.task.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// write(2) that cannot raise SIGPIPE against the process.
//
// Why this way: a child that exits or closes stdin without reading the task makes write() fail
// with EPIPE and, by default, raise SIGPIPE, which terminates the process. The ways out are a
// process-wide SIG_IGN (changes the disposition under the whole program and every library in it,
// and is inherited by children across exec), a socketpair with send(MSG_NOSIGNAL) as the child's
// stdin (children see a socket, not a pipe), or this: SIGPIPE from write() is directed at the
// writing thread, so blocking it in this thread for the call leaves it pending instead of
// delivered; after EPIPE we consume it with a zero-timeout sigtimedwait() and restore the mask.
// Only the calling thread is affected, for the duration of one write, and the process's signal
// dispositions are never touched. A SIGPIPE that was already pending before the call is not ours
// and is left alone.
ssize_t WriteWithoutSigpipe(int fd, const char* data, std::size_t size) {
  sigset_t sigpipe_set;
  sigemptyset(&sigpipe_set);
  sigaddset(&sigpipe_set, SIGPIPE);
  sigset_t old_mask;
  pthread_sigmask(SIG_BLOCK, &sigpipe_set, &old_mask);
  sigset_t pending;
  sigemptyset(&pending);
  sigpending(&pending);
  const bool was_pending = sigismember(&pending, SIGPIPE) == 1;

  const ssize_t written = ::write(fd, data, size);
  const int write_errno = errno;

  if (written < 0 && write_errno == EPIPE && !was_pending) {
    const timespec zero{0, 0};
    while (sigtimedwait(&sigpipe_set, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  errno = write_errno;
  return written;
}

// The child's environment: ours, then the TASKPIPE_* variables, then config.env (which wins).
std::vector<std::string> BuildEnvironment(const HandlerConfig& config, const HandlerTask& task,
                                          const std::string& task_json) {
  std::map<std::string, std::string, std::less<>> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    std::string_view text(*entry);
    std::size_t eq = text.find('=');
    if (eq == std::string_view::npos || eq == 0) continue;
    env.insert_or_assign(std::string(text.substr(0, eq)), std::string(text.substr(eq + 1)));
  }
  env.insert_or_assign("TASKPIPE_JOB", task.job);
  if (task_json.size() <= kMaxTaskEnvValueBytes) {
    env.insert_or_assign("TASKPIPE_TASK", task_json);
  } else {
    env.erase("TASKPIPE_TASK");  // not one inherited from our own environment either
  }
  env.insert_or_assign("TASKPIPE_MESSAGE_ID", task.message_id);
  env.insert_or_assign("TASKPIPE_RECEIVE_COUNT", std::to_string(task.receive_count));
  for (const auto& [name, value] : config.env) env.insert_or_assign(name, value);

  std::vector<std::string> out;
  out.reserve(env.size());
  for (const auto& [name, value] : env) out.push_back(name + "=" + value);
  return out;
}

// A NULL-terminated array of pointers into `strings` (which must outlive it).
std::vector<char*> CStringArray(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Why posix_spawnp() failed with `err`. A failed chdir() surfaces as the same ENOENT/EACCES as a
// missing command, so the working directory is looked at first.
Status SpawnError(int err, const HandlerConfig& config) {
  const std::string command = QuoteForError(config.command[0]);
  if (!config.cwd.empty() && (err == ENOENT || err == ENOTDIR || err == EACCES)) {
    struct stat st {};
    if (::stat(config.cwd.c_str(), &st) != 0) {
      return NotFoundError("cwd does not exist: " + QuoteForError(config.cwd) + " (" + ErrnoText(errno) +
                           ")");
    }
    if (!S_ISDIR(st.st_mode)) return NotFoundError("cwd is not a directory: " + QuoteForError(config.cwd));
    if (::access(config.cwd.c_str(), X_OK) != 0) {
      return PermissionDeniedError("cwd is not accessible: " + QuoteForError(config.cwd) + " (" +
                                   ErrnoText(errno) + ")");
    }
  }
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return NotFoundError("command not found: " + command);
    case EACCES:
      return PermissionDeniedError("command not executable: " + command + " (" + ErrnoText(err) + ")");
    default:
      return InternalError("cannot start " + command + ": " + ErrnoText(err));
  }
}

// Rounds `d` to whole milliseconds for a message.
milliseconds RoundToMs(Clock::duration d) { return std::chrono::round<milliseconds>(d); }

class ExecHandler final : public Handler {
 public:
  ExecHandler(const HandlerConfig& config, Clock& clock, const ExecHandlerOptions& options)
      : config_(config), clock_(clock), options_(options) {}

  HandlerOutcome Run(const HandlerTask& task, std::stop_token stop) override;

 private:
  // "timed out after 10m": the handler's timeout when the deadline came from it, else the time
  // the run was actually given.
  std::string TimeoutText(Clock::duration given) const {
    milliseconds shown = RoundToMs(given);
    const milliseconds configured = config_.timeout;
    if (shown <= configured && configured - shown < std::chrono::seconds(1)) shown = configured;
    return "timed out after " + FormatDuration(shown);
  }

  const HandlerConfig config_;
  Clock& clock_;
  const ExecHandlerOptions options_;
};

// Whether the child has exited, without reaping it: a zombie keeps its pid, and so its process
// group id, from being reused while we still signal the group.
enum class ChildState { kRunning, kExited, kGone };
ChildState PollChild(pid_t pid) {
  siginfo_t info{};
  while (true) {
    info.si_pid = 0;
    if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0) {
      return info.si_pid == 0 ? ChildState::kRunning : ChildState::kExited;
    }
    if (errno != EINTR) return ChildState::kGone;  // ECHILD: reaped elsewhere (SIGCHLD ignored)
  }
}

HandlerOutcome ExecHandler::Run(const HandlerTask& task, std::stop_token stop) {
  const Clock::time_point start = clock_.Now();
  if (stop.stop_requested()) return {CancelledError("cancelled before the command started"), ""};
  if (start >= task.deadline) return {DeadlineExceededError("timed out before the command started"), ""};

  const std::string task_json = TaskJson(task);

  // Pipes: close-on-exec, so only the ends dup'ed onto 0, 1 and 2 reach the child. Our ends are
  // non-blocking; the child's stay blocking as programs expect.
  int in_pipe[2];
  int out_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0) return {InternalError("pipe: " + ErrnoText(errno)), ""};
  Fd stdin_read(in_pipe[0]);
  Fd stdin_write(in_pipe[1]);
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return {InternalError("pipe: " + ErrnoText(errno)), ""};
  Fd output_read(out_pipe[0]);
  Fd output_write(out_pipe[1]);
  if (::fcntl(stdin_write.get(), F_SETFL, O_NONBLOCK) != 0 ||
      ::fcntl(output_read.get(), F_SETFL, O_NONBLOCK) != 0) {
    return {InternalError("fcntl: " + ErrnoText(errno)), ""};
  }

  std::vector<std::string> argv_strings = config_.command;
  std::vector<char*> argv = CStringArray(argv_strings);
  std::vector<std::string> env_strings = BuildEnvironment(config_, task, task_json);
  std::vector<char*> envp = CStringArray(env_strings);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, stdin_read.get(), STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, output_write.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, output_write.get(), STDERR_FILENO);
  // Whatever else is open in this process (another library's descriptor without O_CLOEXEC) stays
  // here.
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  if (!config_.cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, config_.cwd.c_str());

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Its own process group (pgid = its pid), so that SIGTERM/SIGKILL reach whatever it starts.
  // Signals unblocked and at their defaults: the calling thread may block SIGTERM (a daemon's
  // signal-handling thread design), and ignored signals would stay ignored across exec.
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t no_signals;
  sigemptyset(&no_signals);
  posix_spawnattr_setsigmask(&attr, &no_signals);
  sigset_t all_signals;
  sigfillset(&all_signals);
  posix_spawnattr_setsigdefault(&attr, &all_signals);

  pid_t pid = -1;
  // glibc (2.24 on) reports exec failures, a failed chdir included, as the return value.
  const int spawn_error = ::posix_spawnp(&pid, argv[0], &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  stdin_read.Close();
  output_write.Close();  // the child holds the only write end now: EOF when it (and its group) is done
  if (spawn_error != 0) return {SpawnError(spawn_error, config_), ""};

  // Becomes readable when the child exits (Linux 5.3+): its exit wakes poll() at once.
  Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  // Becomes readable when `stop` is requested.
  Fd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  const int wake_fd = wake.get();
  std::stop_callback on_stop(stop, [wake_fd] {
    const std::uint64_t one = 1;
    [[maybe_unused]] ssize_t ignored = ::write(wake_fd, &one, sizeof(one));
  });

  enum class StopReason { kNone, kDeadline, kCancelled };
  StopReason stop_reason = StopReason::kNone;
  Clock::time_point term_sent_at{};
  bool killed = false;
  Status internal_error;

  OutputTail output(kMaxHandlerOutputBytes);
  std::size_t stdin_written = 0;
  if (task_json.empty()) stdin_write.Close();

  auto read_output = [&](int max_reads) {
    for (int i = 0; i < max_reads && output_read.valid(); ++i) {
      const ssize_t got = output.ReadFrom(output_read.get());
      if (got > 0) continue;
      if (got < 0 && errno == EINTR) continue;
      if (got < 0 && errno == EAGAIN) return;
      output_read.Close();  // EOF (or an error we cannot do anything about)
    }
  };
  auto write_stdin = [&] {
    while (stdin_write.valid()) {
      const ssize_t n = WriteWithoutSigpipe(stdin_write.get(), task_json.data() + stdin_written,
                                            task_json.size() - stdin_written);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;  // the pipe is full: poll() says when there is room
      if (n < 0) {                           // EPIPE: the child closed stdin (or exited) unread
        stdin_write.Close();
        return;
      }
      stdin_written += static_cast<std::size_t>(n);
      if (stdin_written == task_json.size()) stdin_write.Close();  // EOF for the child
    }
  };
  auto signal_group = [pid](int sig) { ::kill(-pid, sig); };

  ChildState child = ChildState::kRunning;
  while (true) {
    const Clock::time_point now = clock_.Now();
    if (stop_reason == StopReason::kNone && (stop.stop_requested() || now >= task.deadline)) {
      stop_reason = stop.stop_requested() ? StopReason::kCancelled : StopReason::kDeadline;
      signal_group(SIGTERM);
      term_sent_at = now;
    }
    if (stop_reason != StopReason::kNone && !killed && now - term_sent_at >= options_.kill_grace) {
      signal_group(SIGKILL);
      killed = true;
    }
    child = PollChild(pid);
    if (child != ChildState::kRunning) break;

    // Sleep until the next thing that needs us: output, room in stdin, the child's exit, a stop
    // request, or the next deadline (computed from clock_; poll() itself needs real time).
    Clock::duration wait =
        pidfd.valid() ? Clock::duration(kMaxPollInterval) : Clock::duration(kNoPidfdPollInterval);
    if (stop_reason == StopReason::kNone) {
      wait = std::min(wait, task.deadline - now);
    } else if (!killed) {
      wait = std::min(wait, term_sent_at + options_.kill_grace - now);
    }
    const int timeout_ms =
        static_cast<int>(std::max<std::int64_t>(0, std::chrono::ceil<milliseconds>(wait).count()));

    pollfd fds[4];
    nfds_t nfds = 0;
    int output_index = -1;
    int stdin_index = -1;
    if (output_read.valid()) {
      output_index = static_cast<int>(nfds);
      fds[nfds++] = {output_read.get(), POLLIN, 0};
    }
    if (stdin_write.valid()) {
      stdin_index = static_cast<int>(nfds);
      fds[nfds++] = {stdin_write.get(), POLLOUT, 0};
    }
    if (pidfd.valid()) fds[nfds++] = {pidfd.get(), POLLIN, 0};
    int wake_index = -1;
    if (wake.valid()) {
      wake_index = static_cast<int>(nfds);
      fds[nfds++] = {wake.get(), POLLIN, 0};
    }

    const int ready = ::poll(fds, nfds, timeout_ms);
    if (ready < 0) {
      if (errno == EINTR) continue;
      // Cannot wait any more (ENOMEM): stop the child rather than leave it unsupervised.
      internal_error = InternalError("poll: " + ErrnoText(errno));
      signal_group(SIGKILL);
      killed = true;
      break;
    }
    if (output_index >= 0 && fds[output_index].revents != 0) read_output(kReadsPerWake);
    if (stdin_index >= 0 && fds[stdin_index].revents != 0) write_stdin();
    // A stop request is noticed at the top of the loop; reset the eventfd so poll() does not keep
    // waking for it.
    if (wake_index >= 0 && fds[wake_index].revents != 0) {
      std::uint64_t count = 0;
      [[maybe_unused]] ssize_t ignored = ::read(wake.get(), &count, sizeof(count));
    }
  }

  // The child has exited (or poll failed and it was sent SIGKILL). Anything it left running in its
  // group goes too: no work outlives the task. While the child is an unreaped zombie its pid
  // cannot name another process group, so this cannot hit a stranger.
  if (child != ChildState::kGone) signal_group(SIGKILL);
  stdin_write.Close();
  // What it wrote before exiting is still in the pipe. The group's writers are dead, so this ends
  // at EAGAIN (a writer still alive outside the group holds the pipe open) or EOF.
  for (int i = 0; i < kMaxDrainReads && output_read.valid(); ++i) {
    const ssize_t got = output.ReadFrom(output_read.get());
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
  }

  int wait_status = 0;
  bool reaped = false;
  while (true) {
    const pid_t r = ::waitpid(pid, &wait_status, 0);
    if (r == pid) {
      reaped = true;
      break;
    }
    if (r < 0 && errno == EINTR) continue;
    break;  // ECHILD: someone else reaped it; the exit status is lost
  }

  HandlerOutcome outcome;
  if (!internal_error.ok()) {
    outcome.status = internal_error;
  } else if (stop_reason != StopReason::kNone) {
    std::string message =
        stop_reason == StopReason::kDeadline ? TimeoutText(task.deadline - start) : "cancelled";
    message += killed ? "; killed with SIGKILL after " + FormatDuration(options_.kill_grace) + " grace"
                      : "; stopped with SIGTERM";
    outcome.status = stop_reason == StopReason::kDeadline ? DeadlineExceededError(std::move(message))
                                                          : CancelledError(std::move(message));
  } else if (!reaped) {
    outcome.status = Status(StatusCode::kUnknown, "exit status unknown (the child was reaped elsewhere)");
  } else if (WIFEXITED(wait_status)) {
    const int code = WEXITSTATUS(wait_status);
    if (code == 127 && output.total_bytes() == 0) {
      // What a C library that reports exec failures as exit status 127 looks like (older glibc;
      // also what a shell says for a command it cannot find, minus its message).
      outcome.status =
          NotFoundError("command not found: " + QuoteForError(config_.command[0]) + " (exit status 127)");
    } else if (code != 0) {
      outcome.status = Status(StatusCode::kUnknown, "exit status " + std::to_string(code));
    }
  } else if (WIFSIGNALED(wait_status)) {
    const int sig = WTERMSIG(wait_status);
    outcome.status = Status(StatusCode::kUnknown,
                            "killed by signal " + std::to_string(sig) + " (" + SignalName(sig) + ")");
  } else {
    outcome.status = Status(StatusCode::kUnknown, "unexpected wait status " + std::to_string(wait_status));
  }
  outcome.output = output.str();
  return outcome;
}

bool ValidEnvName(std::string_view name) {
  return !name.empty() && name.find('=') == std::string_view::npos &&
         name.find('\0') == std::string_view::npos;
}

}  // namespace

StatusOr<std::unique_ptr<Handler>> NewExecHandler(const HandlerConfig& config, const HandlerDeps& deps,
                                                  const ExecHandlerOptions& options) {
  if (config.command.empty())
    return InvalidArgumentError("exec handler: command is empty (give an argv array)");
  for (std::size_t i = 0; i < config.command.size(); ++i) {
    if (config.command[i].find('\0') != std::string::npos) {
      return InvalidArgumentError("exec handler: command[" + std::to_string(i) + "] holds a NUL byte");
    }
  }
  if (config.command[0].empty()) return InvalidArgumentError("exec handler: command[0] is empty");
  if (config.cwd.find('\0') != std::string::npos)
    return InvalidArgumentError("exec handler: cwd holds a NUL byte");
  for (const auto& [name, value] : config.env) {
    if (!ValidEnvName(name)) {
      return InvalidArgumentError("exec handler: env: invalid variable name " + QuoteForError(name));
    }
    // The value may be a secret: named, never shown.
    if (value.find('\0') != std::string::npos) {
      return InvalidArgumentError("exec handler: env." + name + " holds a NUL byte");
    }
  }
  if (config.timeout <= std::chrono::seconds(0)) {
    return InvalidArgumentError("exec handler: timeout must be positive, got " +
                                FormatDuration(std::chrono::duration_cast<milliseconds>(config.timeout)));
  }
  if (options.kill_grace < milliseconds(0))
    return InvalidArgumentError("exec handler: kill_grace must be >= 0");
  return std::unique_ptr<Handler>(std::make_unique<ExecHandler>(config, deps.clock, options));
}

}  // namespace taskpipe
