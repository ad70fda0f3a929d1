// ShutdownSignals: SIGINT/SIGTERM handling for the long-running commands (run, consume, produce).
//
// The first signal calls `on_first` (a graceful stop: stop polling, drain, flush); a second one
// calls `on_second` (stop now). Both run on the watcher's own thread, never in a signal handler,
// so they may lock mutexes and log; they must return promptly (wake whoever does the stopping), or
// a second signal waits for them.
//
// BlockShutdownSignals() must run in main() before any thread starts, so that every thread
// inherits the mask and the signals reach only the watcher (a signalfd). Thread-safe.
#ifndef TASKPIPE_APP_SIGNALS_H_
#define TASKPIPE_APP_SIGNALS_H_

#include <functional>
#include <thread>

namespace taskpipe {

// Blocks SIGINT and SIGTERM in the calling thread and ignores SIGPIPE (a peer closing a pipe or
// socket is an error return, not death).
void BlockShutdownSignals();

class ShutdownSignals {
 public:
  ShutdownSignals(std::function<void(int signal)> on_first, std::function<void(int signal)> on_second);
  ~ShutdownSignals();  // stops and joins the watcher
  ShutdownSignals(const ShutdownSignals&) = delete;
  ShutdownSignals& operator=(const ShutdownSignals&) = delete;

 private:
  void Watch();

  std::function<void(int)> on_first_;
  std::function<void(int)> on_second_;
  int signal_fd_ = -1;
  int stop_fd_ = -1;  // an eventfd written by the destructor
  std::thread thread_;
};

}  // namespace taskpipe

#endif  // TASKPIPE_APP_SIGNALS_H_
