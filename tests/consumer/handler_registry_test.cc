#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <chrono>
#include <memory>
#include <sstream>
#include <string>

#include "common/clock.h"
#include "common/logging.h"
#include "consumer/handler.h"
#include "consumer/log_handler.h"
#include "net/http_client.h"

namespace taskpipe {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

class NoHttpClient final : public HttpClient {
 public:
  StatusOr<HttpResponse> Send(const HttpRequest&) override {
    return UnavailableError("no HTTP in this test");
  }
  void Shutdown() override {}
};

// A handler registered from C++: replies with the option it was configured with.
class GreetingHandler final : public Handler {
 public:
  explicit GreetingHandler(std::string greeting) : greeting_(std::move(greeting)) {}
  HandlerOutcome Run(const HandlerTask& task, std::stop_token) override {
    return {Status::Ok(), greeting_ + ", " + task.task.get<std::string>()};
  }

 private:
  std::string greeting_;
};

HandlerTask Task(nlohmann::json task) {
  HandlerTask t;
  t.job = "hello";
  t.task_json = task.dump();
  t.task = std::move(task);
  t.message_id = "1f3c9a2e-0000-4000-8000-000000000001";
  t.receive_count = 1;
  t.deadline = RealClock().Now() + 5s;
  return t;
}

class HandlerRegistryTest : public ::testing::Test {
 protected:
  HandlerDeps Deps(std::shared_ptr<spdlog::logger> logger = NullLogger()) {
    return HandlerDeps{RealClock(), http_, std::move(logger)};
  }
  NoHttpClient http_;
};

TEST_F(HandlerRegistryTest, BuiltinsAreRegistered) {
  EXPECT_THAT(HandlerRegistry::WithBuiltins().Names(), ElementsAre("exec", "http", "log"));
  EXPECT_TRUE(HandlerRegistry().Names().empty());
}

TEST_F(HandlerRegistryTest, UnknownTypeNamesTheKnownOnes) {
  HandlerRegistry registry = HandlerRegistry::WithBuiltins();
  registry.Register("custom",
                    [](const HandlerConfig&, const HandlerDeps&) -> StatusOr<std::unique_ptr<Handler>> {
                      return std::unique_ptr<Handler>(std::make_unique<GreetingHandler>("hi"));
                    });
  StatusOr<std::unique_ptr<Handler>> handler = registry.Create({.type = "exce"}, Deps());
  ASSERT_FALSE(handler.ok());
  EXPECT_EQ(handler.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(handler.status().message(),
            "unknown handler type \"exce\" (known types: custom, exec, http, log)");
}

TEST_F(HandlerRegistryTest, CustomTypeIsCreatedWithItsOptions) {
  HandlerRegistry registry = HandlerRegistry::WithBuiltins();
  registry.Register(
      "greet", [](const HandlerConfig& config, const HandlerDeps&) -> StatusOr<std::unique_ptr<Handler>> {
        if (!config.options.contains("greeting"))
          return InvalidArgumentError("greet handler: options.greeting is missing");
        return std::unique_ptr<Handler>(
            std::make_unique<GreetingHandler>(config.options["greeting"].get<std::string>()));
      });
  EXPECT_THAT(registry.Names(), ElementsAre("exec", "greet", "http", "log"));

  StatusOr<std::unique_ptr<Handler>> handler =
      registry.Create({.type = "greet", .options = {{"greeting", "Hello"}}}, Deps());
  ASSERT_TRUE(handler.ok()) << handler.status().ToString();
  HandlerOutcome outcome = (*handler)->Run(Task("world"), {});
  EXPECT_TRUE(outcome.status.ok());
  EXPECT_EQ(outcome.output, "Hello, world");

  // The factory's own error comes back as it is.
  handler = registry.Create({.type = "greet"}, Deps());
  ASSERT_FALSE(handler.ok());
  EXPECT_EQ(handler.status().message(), "greet handler: options.greeting is missing");
}

TEST_F(HandlerRegistryTest, RegisterReplacesAType) {
  HandlerRegistry registry = HandlerRegistry::WithBuiltins();
  registry.Register("log",
                    [](const HandlerConfig&, const HandlerDeps&) -> StatusOr<std::unique_ptr<Handler>> {
                      return std::unique_ptr<Handler>(std::make_unique<GreetingHandler>("replaced"));
                    });
  StatusOr<std::unique_ptr<Handler>> handler = registry.Create({.type = "log"}, Deps());
  ASSERT_TRUE(handler.ok());
  EXPECT_EQ((*handler)->Run(Task("x"), {}).output, "replaced, x");
}

TEST_F(HandlerRegistryTest, FactoryReturningNullIsAnError) {
  HandlerRegistry registry;
  registry.Register("null",
                    [](const HandlerConfig&, const HandlerDeps&) -> StatusOr<std::unique_ptr<Handler>> {
                      return std::unique_ptr<Handler>();
                    });
  StatusOr<std::unique_ptr<Handler>> handler = registry.Create({.type = "null"}, Deps());
  ASSERT_FALSE(handler.ok());
  EXPECT_EQ(handler.status().code(), StatusCode::kInternal);
}

TEST_F(HandlerRegistryTest, BuiltinFactoriesValidate) {
  HandlerRegistry registry = HandlerRegistry::WithBuiltins();
  EXPECT_EQ(registry.Create({.type = "exec"}, Deps()).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.Create({.type = "http"}, Deps()).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(registry.Create({.type = "exec", .command = {"true"}}, Deps()).ok());
  EXPECT_TRUE(registry.Create({.type = "http", .url = "https://example.com/hook"}, Deps()).ok());
  EXPECT_TRUE(registry.Create({.type = "log"}, Deps()).ok());
  EXPECT_FALSE(registry.Create({.type = "log", .timeout = 0s}, Deps()).ok());
}

// --- log handler -----------------------------------------------------------------------------

TEST_F(HandlerRegistryTest, LogHandlerLogsOneLineAndReturnsIt) {
  std::ostringstream logged;
  auto logger =
      std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::ostream_sink_mt>(logged));
  logger->set_pattern("%l %v");
  StatusOr<std::unique_ptr<Handler>> handler =
      HandlerRegistry::WithBuiltins().Create({.type = "log"}, Deps(logger));
  ASSERT_TRUE(handler.ok());

  HandlerOutcome outcome = (*handler)->Run(Task("Hello from taskpipe #1"), {});
  EXPECT_TRUE(outcome.status.ok());
  const std::string line =
      "job \"hello\" task \"Hello from taskpipe #1\" (message 1f3c9a2e-0000-4000-8000-000000000001, receive "
      "1)";
  EXPECT_EQ(outcome.output, line);
  logger->flush();
  EXPECT_EQ(logged.str(), "info " + line + "\n");

  outcome = (*handler)->Run(Task({{"report", "sales"}, {"day", "yesterday"}}), {});
  EXPECT_THAT(outcome.output, HasSubstr(R"(task {"day":"yesterday","report":"sales"} (message)"));
}

TEST_F(HandlerRegistryTest, LogHandlerWithoutALoggerStillSucceeds) {
  StatusOr<std::unique_ptr<Handler>> handler =
      HandlerRegistry::WithBuiltins().Create({.type = "log"}, Deps(nullptr));
  ASSERT_TRUE(handler.ok());
  HandlerTask task = Task("x");
  task.task_json.clear();  // made from `task` when absent
  EXPECT_EQ((*handler)->Run(task, {}).output, LogHandlerLine(Task("x")));
}

}  // namespace
}  // namespace taskpipe
