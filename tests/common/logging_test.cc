#include "common/logging.h"

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/ostream_sink.h>

namespace taskpipe {
namespace {

struct Captured {
  std::ostringstream out;
  std::shared_ptr<spdlog::logger> logger;
};

std::unique_ptr<Captured> Capture(LogOptions options, std::shared_ptr<const Redactor> redactor) {
  auto c = std::make_unique<Captured>();
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(c->out);
  c->logger = NewLogger("test", options, std::move(redactor), sink);
  return c;
}

TEST(LoggingTest, ParseLevelAndFormat) {
  EXPECT_EQ(*ParseLogLevel("debug"), spdlog::level::debug);
  EXPECT_EQ(*ParseLogLevel("warning"), spdlog::level::warn);
  EXPECT_EQ(*ParseLogLevel("off"), spdlog::level::off);
  StatusOr<spdlog::level::level_enum> bad = ParseLogLevel("loud");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("unknown log level \"loud\""), std::string::npos);
  EXPECT_EQ(*ParseLogFormat("json"), LogFormat::kJson);
  EXPECT_FALSE(ParseLogFormat("xml").ok());
}

TEST(LoggingTest, TextLineHasUtcTimeLevelNameAndMessage) {
  auto c = Capture({.level = spdlog::level::info, .format = LogFormat::kText}, nullptr);
  c->logger->info("hello {}", 42);
  std::string line = c->out.str();
  // 2026-03-08T07:00:00.123Z info  [test] hello 42
  ASSERT_GE(line.size(), 25u);
  EXPECT_EQ(line[4], '-');
  EXPECT_EQ(line[10], 'T');
  EXPECT_EQ(line[23], 'Z');
  EXPECT_NE(line.find(" info  [test] hello 42\n"), std::string::npos) << line;
}

TEST(LoggingTest, LevelFilters) {
  auto c = Capture({.level = spdlog::level::warn, .format = LogFormat::kText}, nullptr);
  c->logger->info("quiet");
  c->logger->warn("loud");
  EXPECT_EQ(c->out.str().find("quiet"), std::string::npos);
  EXPECT_NE(c->out.str().find("loud"), std::string::npos);
}

TEST(LoggingTest, JsonLinesParseAndEscape) {
  auto c = Capture({.level = spdlog::level::debug, .format = LogFormat::kJson}, nullptr);
  c->logger->debug("quote \" backslash \\ newline \n tab \t ctl \x01 done");
  c->logger->error("second");
  std::istringstream lines(c->out.str());
  std::string first, second;
  ASSERT_TRUE(std::getline(lines, first));
  ASSERT_TRUE(std::getline(lines, second));
  nlohmann::json a = nlohmann::json::parse(first, nullptr, false);
  ASSERT_FALSE(a.is_discarded()) << first;
  EXPECT_EQ(a["level"], "debug");
  EXPECT_EQ(a["logger"], "test");
  EXPECT_EQ(a["msg"], "quote \" backslash \\ newline \n tab \t ctl \x01 done");
  EXPECT_EQ(a["time"].get<std::string>().size(), 24u);
  nlohmann::json b = nlohmann::json::parse(second, nullptr, false);
  EXPECT_EQ(b["level"], "error");
}

TEST(LoggingTest, SecretsNeverReachTheSinkInEitherFormat) {
  auto redactor = std::make_shared<Redactor>();
  redactor->AddSecret("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
  for (LogFormat format : {LogFormat::kText, LogFormat::kJson}) {
    auto c = Capture({.level = spdlog::level::trace, .format = format}, redactor);
    c->logger->trace("key {} hook {} auth {}", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                     "https://hooks.slack.com/services/T1/B2/abcdef", "Bearer tok-123456");
    const std::string out = c->out.str();
    EXPECT_EQ(out.find("wJalrXUtnFEMI"), std::string::npos) << out;
    EXPECT_EQ(out.find("T1/B2"), std::string::npos) << out;
    EXPECT_EQ(out.find("tok-123456"), std::string::npos) << out;
    EXPECT_NE(out.find("***"), std::string::npos) << out;
  }
}

TEST(LoggingTest, NullLoggerDropsEverything) {
  auto logger = NullLogger();
  EXPECT_FALSE(logger->should_log(spdlog::level::critical));
  logger->critical("nothing");
}

}  // namespace
}  // namespace taskpipe
