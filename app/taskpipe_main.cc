// The taskpipe executable: the command line (app/cli.h) with the built-in handlers.
#include "app/cli.h"
#include "app/signals.h"
#include "consumer/handler.h"

int main(int argc, char** argv) {
  taskpipe::BlockShutdownSignals();
  return taskpipe::RunTaskpipeCli(argc, argv, taskpipe::HandlerRegistry::WithBuiltins());
}
