// A taskpipe binary with a handler written in C++: everything `taskpipe` does, plus the handler
// type "word-count", which counts the words of a task's "text" (or of a string task).
//
//   cmake --build build --target custom_handler_example
//   ./build/custom_handler_example run --config examples/custom_handler.json
//
// A handler is a class with one method, Run(), called from many worker threads at once (so it
// must be thread-safe), and a factory that checks the job's handler config once at start-up.
#include <sstream>
#include <string>

#include "app/cli.h"
#include "app/signals.h"
#include "consumer/handler.h"

namespace {

class WordCountHandler final : public taskpipe::Handler {
 public:
  explicit WordCountHandler(int min_words) : min_words_(min_words) {}

  taskpipe::HandlerOutcome Run(const taskpipe::HandlerTask& task, std::stop_token /*stop*/) override {
    std::string text;
    if (task.task.is_string()) {
      text = task.task.get<std::string>();
    } else if (task.task.is_object() && task.task.contains("text") && task.task["text"].is_string()) {
      text = task.task["text"].get<std::string>();
    } else {
      return {.status = taskpipe::InvalidArgumentError("the task has no \"text\" to count"), .output = ""};
    }
    std::istringstream in(text);
    int words = 0;
    for (std::string word; in >> word;) ++words;
    const std::string output = std::to_string(words) + " words";
    if (words < min_words_) {
      return {.status = taskpipe::FailedPreconditionError(output + ", fewer than " + std::to_string(min_words_)),
              .output = output};
    }
    return {.status = taskpipe::Status::Ok(), .output = output};
  }

 private:
  const int min_words_;
};

// The job's "handler" object: {"type": "word-count", "options": {"min_words": 3}}.
taskpipe::StatusOr<std::unique_ptr<taskpipe::Handler>> MakeWordCountHandler(const taskpipe::HandlerConfig& config,
                                                                             const taskpipe::HandlerDeps&) {
  int min_words = 1;
  if (config.options.is_object() && config.options.contains("min_words")) {
    const nlohmann::json& value = config.options["min_words"];
    if (!value.is_number_integer() || value.get<int>() < 0) {
      return taskpipe::InvalidArgumentError("options.min_words: expected a whole number >= 0");
    }
    min_words = value.get<int>();
  }
  return std::unique_ptr<taskpipe::Handler>(new WordCountHandler(min_words));
}

}  // namespace

int main(int argc, char** argv) {
  taskpipe::BlockShutdownSignals();
  taskpipe::HandlerRegistry registry = taskpipe::HandlerRegistry::WithBuiltins();
  registry.Register("word-count", MakeWordCountHandler);
  return taskpipe::RunTaskpipeCli(argc, argv, registry);
}
