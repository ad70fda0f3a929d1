// The taskpipe command line as a function, so that a program with its own C++ handlers is a
// complete taskpipe (examples/custom_handler.cc):
//
//   int main(int argc, char** argv) {
//     taskpipe::BlockShutdownSignals();
//     taskpipe::HandlerRegistry registry = taskpipe::HandlerRegistry::WithBuiltins();
//     registry.Register("word-count", MakeWordCountHandler);
//     return taskpipe::RunTaskpipeCli(argc, argv, registry);
//   }
#ifndef TASKPIPE_APP_CLI_H_
#define TASKPIPE_APP_CLI_H_

#include "consumer/handler.h"

namespace taskpipe {

// Parses `argv` and runs the command. Returns the exit status (0, 1 or 2). Call
// BlockShutdownSignals() (app/signals.h) first, before any thread starts.
int RunTaskpipeCli(int argc, char** argv, const HandlerRegistry& registry);

}  // namespace taskpipe

#endif  // TASKPIPE_APP_CLI_H_
