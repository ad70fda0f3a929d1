#include "consumer/exec_handler.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/logging.h"
#include "consumer/handler.h"
#include "consumer/output_tail.h"
#include "net/http_client.h"
#include "tests/fakes/fake_clock.h"

namespace taskpipe {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using namespace std::chrono_literals;

// The exec handler never sends HTTP.
class NoHttpClient final : public HttpClient {
 public:
  StatusOr<HttpResponse> Send(const HttpRequest&) override {
    return UnavailableError("no HTTP in this test");
  }
  void Shutdown() override {}
};

std::chrono::milliseconds Since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
}

// A fresh directory under TMPDIR (or /tmp), removed with its files at the end of the test.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string templ =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/exec_handler_test.XXXXXX";
    char* made = ::mkdtemp(templ.data());
    EXPECT_NE(made, nullptr) << "mkdtemp: " << errno;
    char* real = ::realpath(templ.c_str(), nullptr);
    path_ = real != nullptr ? real : templ;
    std::free(real);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class ExecHandlerTest : public ::testing::Test {
 protected:
  HandlerDeps Deps(Clock& clock) { return HandlerDeps{clock, http_, NullLogger()}; }

  std::unique_ptr<Handler> Make(HandlerConfig config, ExecHandlerOptions options = {},
                                Clock* clock = nullptr) {
    config.type = "exec";
    StatusOr<std::unique_ptr<Handler>> handler =
        NewExecHandler(config, Deps(clock != nullptr ? *clock : RealClock()), options);
    EXPECT_TRUE(handler.ok()) << handler.status().ToString();
    return handler.ok() ? std::move(handler).value() : nullptr;
  }

  static HandlerTask Task(std::string task_json, Clock::duration timeout = 5s, Clock& clock = RealClock()) {
    HandlerTask task;
    task.job = "hello";
    task.task = nlohmann::json::parse(task_json, nullptr, false);
    task.task_json = std::move(task_json);
    task.message_id = "1f3c9a2e-0000-4000-8000-000000000001";
    task.receive_count = 2;
    task.deadline = clock.Now() + timeout;
    return task;
  }

  NoHttpClient http_;
};

// A pid printed by a child ("12345\n..."), or -1.
pid_t FirstLineAsPid(const std::string& output) {
  std::size_t end = output.find('\n');
  std::string line = output.substr(0, end);
  if (line.empty() || line.find_first_not_of("0123456789") != std::string::npos) return -1;
  return static_cast<pid_t>(std::stol(line));
}

// True when process `pid` has ended (or ends within `within`: a SIGKILL takes effect
// asynchronously, so a process signalled just before the handler returned may still be on its way
// out). Waits on a pidfd, which becomes readable when the process exits: no sleeping.
bool ProcessEnds(pid_t pid, std::chrono::milliseconds within = 1000ms) {
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return errno == ESRCH;  // gone and reaped already
  pollfd pfd{fd, POLLIN, 0};
  bool ended = ::poll(&pfd, 1, static_cast<int>(within.count())) == 1;
  ::close(fd);
  return ended;
}

// Blocks until the FIFO at `path` gets a line (the child announcing that it runs), at most 5 s.
bool WaitForFifo(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return false;
  pollfd pfd{fd, POLLIN, 0};
  bool got = ::poll(&pfd, 1, 5000) == 1 && (pfd.revents & POLLIN) != 0;
  ::close(fd);
  return got;
}

// --- OutputTail ------------------------------------------------------------------------------

TEST(OutputTailTest, KeepsTheLastBytesAcrossWraps) {
  OutputTail tail(8);
  tail.Append("abc");
  EXPECT_EQ(tail.str(), "abc");
  EXPECT_FALSE(tail.truncated());
  tail.Append("defgh");
  EXPECT_EQ(tail.str(), "abcdefgh");
  tail.Append("ij");
  EXPECT_EQ(tail.str(), "cdefghij");
  tail.Append("0123456789xyz");  // longer than the ring
  EXPECT_EQ(tail.str(), "56789xyz");
  tail.Append("!");
  EXPECT_EQ(tail.str(), "6789xyz!");
  EXPECT_EQ(tail.total_bytes(), 3u + 5 + 2 + 13 + 1);
  EXPECT_TRUE(tail.truncated());
}

TEST(OutputTailTest, ReadFromFillsTheRingInPlace) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  OutputTail tail(5);
  ASSERT_EQ(::write(fds[1], "abc", 3), 3);
  EXPECT_EQ(tail.ReadFrom(fds[0]), 3);
  ASSERT_EQ(::write(fds[1], "defghij", 7), 7);
  EXPECT_EQ(tail.ReadFrom(fds[0]), 5);  // at most the capacity per read
  EXPECT_EQ(tail.str(), "defgh");
  EXPECT_EQ(tail.ReadFrom(fds[0]), 2);
  EXPECT_EQ(tail.str(), "fghij");
  ::close(fds[1]);
  EXPECT_EQ(tail.ReadFrom(fds[0]), 0);
  ::close(fds[0]);
}

TEST(OutputTailTest, CutOutputStartsAtACharacterBoundary) {
  OutputTail tail(4);
  tail.Append("x\xC3\xA9\xE2\x82\xAC");  // "xé€": the last 4 bytes start inside "é"
  EXPECT_EQ(tail.str(), "\xE2\x82\xAC");
  EXPECT_EQ(TailOf("ab\xE2\x82\xAC", 2), "");
  EXPECT_EQ(TailOf("abcdef", 3), "def");
  EXPECT_EQ(TailOf("abc", 3), "abc");
}

// --- Config validation -----------------------------------------------------------------------

TEST_F(ExecHandlerTest, RejectsBadConfigs) {
  auto error = [&](HandlerConfig config) {
    StatusOr<std::unique_ptr<Handler>> handler = NewExecHandler(config, Deps(RealClock()));
    EXPECT_FALSE(handler.ok());
    EXPECT_EQ(handler.status().code(), StatusCode::kInvalidArgument);
    return handler.status().message();
  };
  EXPECT_THAT(error({.type = "exec"}), HasSubstr("command is empty"));
  EXPECT_THAT(error({.type = "exec", .command = {""}}), HasSubstr("command[0] is empty"));
  EXPECT_THAT(error({.type = "exec", .command = {"true"}, .timeout = 0s}),
              HasSubstr("timeout must be positive"));
  EXPECT_THAT(error({.type = "exec", .command = {"true"}, .env = {{"A=B", "x"}}}),
              HasSubstr("invalid variable name"));
  EXPECT_THAT(error({.type = "exec", .command = {"true", std::string("a\0b", 3)}}), HasSubstr("command[1]"));
}

// --- Running commands ------------------------------------------------------------------------

TEST_F(ExecHandlerTest, TaskOnStdinIsEchoedBack) {
  auto handler = Make({.command = {"cat"}});
  HandlerOutcome outcome = handler->Run(Task(R"({"report":"sales","day":"yesterday"})"), {});
  EXPECT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  EXPECT_EQ(outcome.output, R"({"report":"sales","day":"yesterday"})");
}

TEST_F(ExecHandlerTest, StdoutAndStderrInterleaveInOrder) {
  auto handler = Make({.command = {"sh", "-c", "echo a; echo b >&2; echo c"}});
  HandlerOutcome outcome = handler->Run(Task("\"t\""), {});
  EXPECT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  EXPECT_EQ(outcome.output, "a\nb\nc\n");
}

TEST_F(ExecHandlerTest, TaskpipeVariablesAreInTheEnvironment) {
  auto handler = Make({.command = {"sh", "-c",
                                   R"(printf '%s|%s|%s|%s|%s' "$TASKPIPE_JOB" "$TASKPIPE_TASK" )"
                                   R"("$TASKPIPE_MESSAGE_ID" "$TASKPIPE_RECEIVE_COUNT" "$PATH")"}});
  HandlerOutcome outcome = handler->Run(Task("\"Hello from taskpipe #1\""), {});
  EXPECT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  const char* path = std::getenv("PATH");
  EXPECT_EQ(outcome.output,
            std::string("hello|\"Hello from taskpipe #1\"|1f3c9a2e-0000-4000-8000-000000000001|2|") +
                (path != nullptr ? path : ""));
}

TEST_F(ExecHandlerTest, ConfiguredEnvironmentWins) {
  auto handler = Make({.command = {"sh", "-c", R"(printf '%s|%s' "$TASKPIPE_JOB" "$EXTRA_SETTING")"},
                       .env = {{"TASKPIPE_JOB", "overridden"}, {"EXTRA_SETTING", "x y"}}});
  HandlerOutcome outcome = handler->Run(Task("{}"), {});
  EXPECT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  EXPECT_EQ(outcome.output, "overridden|x y");
}

TEST_F(ExecHandlerTest, RunsInTheConfiguredDirectory) {
  TempDir dir;
  {
    std::ofstream script(dir.path() + "/hello.sh");
    script << "#!/bin/sh\necho \"from script in $(pwd)\"\n";
  }
  ASSERT_EQ(::chmod((dir.path() + "/hello.sh").c_str(), 0755), 0);
  // A relative command with a '/' is relative to cwd.
  auto handler = Make({.command = {"./hello.sh"}, .cwd = dir.path()});
  HandlerOutcome outcome = handler->Run(Task("{}"), {});
  EXPECT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  EXPECT_EQ(outcome.output, "from script in " + dir.path() + "\n");
}

TEST_F(ExecHandlerTest, NonZeroExitIsAFailureWithItsOutput) {
  auto handler = Make({.command = {"sh", "-c", "echo 'report failed' >&2; exit 3"}});
  HandlerOutcome outcome = handler->Run(Task("{}"), {});
  EXPECT_EQ(outcome.status.code(), StatusCode::kUnknown);
  EXPECT_EQ(outcome.status.message(), "exit status 3");
  EXPECT_EQ(outcome.output, "report failed\n");
}

TEST_F(ExecHandlerTest, KilledBySignal) {
  auto handler = Make({.command = {"sh", "-c", "kill -9 $$"}});
  HandlerOutcome outcome = handler->Run(Task("{}"), {});
  EXPECT_EQ(outcome.status.code(), StatusCode::kUnknown);
  EXPECT_EQ(outcome.status.message(), "killed by signal 9 (SIGKILL)");
}

// Restores the process's SIGPIPE disposition at the end of a test. Other tests in this binary set
// SIG_IGN (tests/testing/run_process.cc); this one wants the default, which kills a process.
class ScopedDefaultSigpipe {
 public:
  ScopedDefaultSigpipe() {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    ::sigaction(SIGPIPE, &dfl, &saved_);
  }
  ~ScopedDefaultSigpipe() { ::sigaction(SIGPIPE, &saved_, nullptr); }

 private:
  struct sigaction saved_ {};
};

TEST_F(ExecHandlerTest, ChildThatIgnoresALargeTaskNeitherKillsUsNorHangs) {
  ScopedDefaultSigpipe default_sigpipe;
  const std::string text(3 << 20, 'x');
  // 3 MiB of task JSON, made without parsing it (slow under sanitizers).
  auto big_task = [&] {
    HandlerTask task = Task("{}");
    task.task = text;
    task.task_json = "\"" + text + "\"";
    return task;
  };
  const std::size_t json_size = text.size() + 2;
  auto start = std::chrono::steady_clock::now();
  for (const char* command : {"true", "false"}) {
    auto handler = Make({.command = {command}});
    HandlerOutcome outcome = handler->Run(big_task(), {});
    EXPECT_EQ(outcome.status.ok(), std::string(command) == "true") << outcome.status.ToString();
  }
  // A child that reads a little and exits.
  auto handler = Make({.command = {"head", "-c", "5"}});
  HandlerOutcome outcome = handler->Run(big_task(), {});
  EXPECT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  EXPECT_EQ(outcome.output, "\"xxxx");
  // Too large for one environment string: TASKPIPE_TASK is left out, stdin still has it all.
  handler = Make({.command = {"sh", "-c", R"(printf '%s|' "${TASKPIPE_TASK-unset}"; wc -c)"}});
  outcome = handler->Run(big_task(), {});
  EXPECT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  EXPECT_THAT(outcome.output, StartsWith("unset|"));
  EXPECT_THAT(outcome.output, HasSubstr(std::to_string(json_size)));
  EXPECT_LT(Since(start), 2s);
}

TEST_F(ExecHandlerTest, HugeOutputKeepsExactlyTheLast64KiBInBoundedMemory) {
  rusage before{};
  ::getrusage(RUSAGE_SELF, &before);
  auto handler = Make({.command = {"sh", "-c", "head -c 50000000 /dev/zero | tr '\\0' x; printf END"}});
  auto start = std::chrono::steady_clock::now();
  HandlerOutcome outcome = handler->Run(Task("{}", 10s), {});
  EXPECT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  ASSERT_EQ(outcome.output.size(), kMaxHandlerOutputBytes);
  EXPECT_EQ(outcome.output, std::string(kMaxHandlerOutputBytes - 3, 'x') + "END");
  EXPECT_LT(Since(start), 2s);
  rusage after{};
  ::getrusage(RUSAGE_SELF, &after);
  // ru_maxrss is a high-water mark in KiB: holding the 50 MB would raise it by ~50,000.
  EXPECT_LT(after.ru_maxrss - before.ru_maxrss, 16 * 1024);
}

TEST_F(ExecHandlerTest, TimeoutStopsTheChildWithSigterm) {
  auto handler = Make({.command = {"sh", "-c", "echo $$; exec sleep 100"}});
  auto start = std::chrono::steady_clock::now();
  HandlerOutcome outcome = handler->Run(Task("{}", 300ms), {});
  EXPECT_LT(Since(start), 1s);
  EXPECT_EQ(outcome.status.code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(outcome.status.message(), "timed out after 300ms; stopped with SIGTERM");
  // Reaped: no zombie is left.
  pid_t pid = FirstLineAsPid(outcome.output);
  ASSERT_GT(pid, 0) << outcome.output;
  EXPECT_EQ(::waitpid(pid, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

TEST_F(ExecHandlerTest, ChildThatIgnoresSigtermGetsSigkillAfterTheGrace) {
  auto handler = Make({.command = {"sh", "-c", "trap '' TERM; echo $$; sleep 100"}}, {.kill_grace = 200ms});
  auto start = std::chrono::steady_clock::now();
  HandlerOutcome outcome = handler->Run(Task("{}", 300ms), {});
  EXPECT_GE(Since(start), 500ms);
  EXPECT_LT(Since(start), 1500ms);
  EXPECT_EQ(outcome.status.code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(outcome.status.message(), "timed out after 300ms; killed with SIGKILL after 200ms grace");
  pid_t pid = FirstLineAsPid(outcome.output);
  ASSERT_GT(pid, 0) << outcome.output;
  EXPECT_EQ(::waitpid(pid, nullptr, WNOHANG), -1);
}

TEST_F(ExecHandlerTest, GrandchildrenAreStoppedToo) {
  for (const char* script : {
           "sleep 100 & echo $!; sleep 100",
           // The grandchild ignores SIGTERM: only the SIGKILL sent to the group once the child has
           // gone can end it.
           "(trap '' TERM; exec sleep 100) & echo $!; sleep 100",
       }) {
    SCOPED_TRACE(script);
    auto handler = Make({.command = {"sh", "-c", script}}, {.kill_grace = 200ms});
    HandlerOutcome outcome = handler->Run(Task("{}", 300ms), {});
    EXPECT_EQ(outcome.status.code(), StatusCode::kDeadlineExceeded);
    pid_t grandchild = FirstLineAsPid(outcome.output);
    ASSERT_GT(grandchild, 0) << outcome.output;
    EXPECT_TRUE(ProcessEnds(grandchild));
  }
}

TEST_F(ExecHandlerTest, BackgroundJobsDoNotOutliveASuccessfulRun) {
  // The child exits at once, leaving a grandchild that holds the output pipe open: the run ends
  // with the child, and the grandchild goes with it.
  auto handler = Make({.command = {"sh", "-c", "sleep 100 & echo $!"}});
  auto start = std::chrono::steady_clock::now();
  HandlerOutcome outcome = handler->Run(Task("{}"), {});
  EXPECT_LT(Since(start), 1s);
  EXPECT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  pid_t grandchild = FirstLineAsPid(outcome.output);
  ASSERT_GT(grandchild, 0) << outcome.output;
  EXPECT_TRUE(ProcessEnds(grandchild));
}

TEST_F(ExecHandlerTest, StopRequestedMidRunStopsTheChild) {
  TempDir dir;
  const std::string fifo = dir.path() + "/started";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto handler = Make({.command = {"sh", "-c", "echo $$; echo go > \"$1\"; exec sleep 100", "sh", fifo}});
  std::stop_source stop;
  std::optional<HandlerOutcome> outcome;
  std::thread runner([&] { outcome = handler->Run(Task("{}", 10s), stop.get_token()); });
  ASSERT_TRUE(WaitForFifo(fifo));
  auto stopped_at = std::chrono::steady_clock::now();
  stop.request_stop();
  runner.join();
  EXPECT_LT(Since(stopped_at), 1s);
  ASSERT_TRUE(outcome.has_value());
  EXPECT_EQ(outcome->status.code(), StatusCode::kCancelled);
  EXPECT_EQ(outcome->status.message(), "cancelled; stopped with SIGTERM");
  pid_t pid = FirstLineAsPid(outcome->output);
  ASSERT_GT(pid, 0) << outcome->output;
  EXPECT_EQ(::waitpid(pid, nullptr, WNOHANG), -1);
}

TEST_F(ExecHandlerTest, StopRequestedBeforeTheRunStartsNothing) {
  auto handler = Make({.command = {"sh", "-c", "exit 0"}});
  std::stop_source stop;
  stop.request_stop();
  HandlerOutcome outcome = handler->Run(Task("{}"), stop.get_token());
  EXPECT_EQ(outcome.status.code(), StatusCode::kCancelled);
}

TEST_F(ExecHandlerTest, DeadlineComesFromTheInjectedClock) {
  FakeClock clock;
  TempDir dir;
  const std::string fifo = dir.path() + "/started";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto handler = Make({.command = {"sh", "-c", "echo go > \"$1\"; exec sleep 100", "sh", fifo}}, {}, &clock);
  std::optional<HandlerOutcome> outcome;
  std::thread runner([&] { outcome = handler->Run(Task("{}", 1h, clock), {}); });
  ASSERT_TRUE(WaitForFifo(fifo));
  clock.Advance(1h);  // no real hour passes: the handler sees it at its next poll
  runner.join();
  ASSERT_TRUE(outcome.has_value());
  EXPECT_EQ(outcome->status.code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(outcome->status.message(), "timed out after 1h; stopped with SIGTERM");
}

TEST_F(ExecHandlerTest, SigtermReachesTheChildEvenIfTheCallingThreadBlocksIt) {
  // A daemon often blocks SIGTERM in every thread and waits for it in one; the child must not
  // inherit that mask, or it could only ever be stopped by SIGKILL.
  auto handler = Make({.command = {"sleep", "100"}}, {.kill_grace = 5s});
  std::optional<HandlerOutcome> outcome;
  std::thread runner([&] {
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &term, nullptr);
    outcome = handler->Run(Task("{}", 200ms), {});
  });
  runner.join();
  ASSERT_TRUE(outcome.has_value());
  EXPECT_EQ(outcome->status.message(), "timed out after 200ms; stopped with SIGTERM");
}

TEST_F(ExecHandlerTest, CommandNotFound) {
  auto handler = Make({.command = {"taskpipe-no-such-command-4f2a", "--flag"}});
  HandlerOutcome outcome = handler->Run(Task("{}"), {});
  EXPECT_EQ(outcome.status.code(), StatusCode::kNotFound);
  EXPECT_EQ(outcome.status.message(), "command not found: \"taskpipe-no-such-command-4f2a\"");
  handler = Make({.command = {"/nonexistent/bin/report"}});
  EXPECT_EQ(handler->Run(Task("{}"), {}).status.message(), "command not found: \"/nonexistent/bin/report\"");
}

TEST_F(ExecHandlerTest, CommandNotExecutable) {
  TempDir dir;
  { std::ofstream(dir.path() + "/script.sh") << "#!/bin/sh\necho hi\n"; }
  auto handler = Make({.command = {dir.path() + "/script.sh"}});
  HandlerOutcome outcome = handler->Run(Task("{}"), {});
  EXPECT_EQ(outcome.status.code(), StatusCode::kPermissionDenied);
  EXPECT_THAT(outcome.status.message(), StartsWith("command not executable: "));
}

TEST_F(ExecHandlerTest, MissingWorkingDirectory) {
  auto handler = Make({.command = {"true"}, .cwd = "/nonexistent/taskpipe-dir"});
  HandlerOutcome outcome = handler->Run(Task("{}"), {});
  EXPECT_EQ(outcome.status.code(), StatusCode::kNotFound);
  EXPECT_THAT(outcome.status.message(), StartsWith("cwd does not exist: \"/nonexistent/taskpipe-dir\""));
}

TEST_F(ExecHandlerTest, ShellReportingANotFoundCommandKeepsItsMessage) {
  auto handler = Make({.command = {"sh", "-c", "taskpipe-no-such-command-4f2a"}});
  HandlerOutcome outcome = handler->Run(Task("{}"), {});
  EXPECT_EQ(outcome.status.message(), "exit status 127");
  EXPECT_THAT(outcome.output, HasSubstr("not found"));
}

TEST_F(ExecHandlerTest, ConcurrentRunsFromManyThreads) {
  auto echo = Make({.command = {"sh", "-c", "cat; echo \" $TASKPIPE_RECEIVE_COUNT\""}});
  auto sleeper = Make({.command = {"sleep", "100"}});
  constexpr int kThreads = 8;
  std::vector<HandlerOutcome> outcomes(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      for (int round = 0; round < 3; ++round) {
        if (i % 4 == 3) {
          outcomes[i] = sleeper->Run(Task("{}", 100ms), {});
          if (outcomes[i].status.code() != StatusCode::kDeadlineExceeded) return;
        } else {
          HandlerTask task = Task("{\"n\":" + std::to_string(i) + "}");
          task.receive_count = round;
          outcomes[i] = echo->Run(task, {});
          if (outcomes[i].output != "{\"n\":" + std::to_string(i) + "} " + std::to_string(round) + "\n")
            return;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < kThreads; ++i) {
    if (i % 4 == 3) {
      EXPECT_EQ(outcomes[i].status.code(), StatusCode::kDeadlineExceeded) << i;
    } else {
      EXPECT_TRUE(outcomes[i].status.ok()) << i << ": " << outcomes[i].status.ToString();
      EXPECT_EQ(outcomes[i].output, "{\"n\":" + std::to_string(i) + "} 2\n");
    }
  }
}

}  // namespace
}  // namespace taskpipe
