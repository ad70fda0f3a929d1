#include "tests/testing/sqs_server.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <sstream>

#include <gtest/gtest.h>

#include "tests/testing/run_process.h"

namespace taskpipe::testing {
namespace {

const char kTool[] = TASKPIPE_SOURCE_DIR "/tests/testing/sqs_tool.py";

ProcessResult RunTool(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"/usr/bin/env", "python3", kTool, SqsTestEndpoint()};
  argv.insert(argv.end(), args.begin(), args.end());
  ProcessOptions options;
  options.timeout_seconds = 60;
  options.unset_env = {"http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"};
  return RunProcess(argv, options);
}

}  // namespace

std::string SqsTestEndpoint() {
  const char* endpoint = std::getenv("TASKPIPE_TEST_SQS_ENDPOINT");
  if (endpoint == nullptr || *endpoint == '\0') {
    ADD_FAILURE() << "TASKPIPE_TEST_SQS_ENDPOINT is not set: run the tests with 'bash scripts/test.sh', which "
                     "starts moto_server on loopback, or start 'moto_server -H 127.0.0.1 -p PORT' and export "
                     "TASKPIPE_TEST_SQS_ENDPOINT=http://127.0.0.1:PORT";
    return "";
  }
  return endpoint;
}

ProcessOptions SqsClientEnv(const std::string& home) {
  ProcessOptions options;
  options.env = {{"AWS_ENDPOINT_URL_SQS", SqsTestEndpoint()},
                 {"AWS_ACCESS_KEY_ID", "AKIDTESTING"},
                 {"AWS_SECRET_ACCESS_KEY", "secret-for-tests-only"},
                 {"AWS_REGION", "us-east-1"},
                 {"HOME", home},
                 {"AWS_EC2_METADATA_DISABLED", "true"}};
  options.unset_env = {"AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "http_proxy", "HTTP_PROXY",
                       "https_proxy", "HTTPS_PROXY", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                       "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"};
  options.timeout_seconds = 60;
  return options;
}

std::string UniqueQueueName(const std::string& prefix, bool fifo) {
  static std::atomic<int> counter{0};
  return prefix + "-" + std::to_string(getpid()) + "-" + std::to_string(counter.fetch_add(1)) + (fifo ? ".fifo" : "");
}

std::string CreateTestQueue(const std::string& name, const std::vector<std::string>& attributes) {
  if (SqsTestEndpoint().empty()) return "";
  std::vector<std::string> args = {"create", name};
  args.insert(args.end(), attributes.begin(), attributes.end());
  ProcessResult result = RunTool(args);
  if (result.exit_code != 0) {
    ADD_FAILURE() << "creating queue " << name << " with boto3 failed: " << result.err;
    return "";
  }
  std::string url = result.out;
  while (!url.empty() && (url.back() == '\n' || url.back() == '\r')) url.pop_back();
  return url;
}

std::pair<std::string, std::string> CreateTestQueueWithDeadLetter(const std::string& name, int max_receives) {
  if (SqsTestEndpoint().empty()) return {};
  ProcessResult result = RunTool({"create-with-dlq", name, std::to_string(max_receives)});
  const std::size_t space = result.out.find(' ');
  if (result.exit_code != 0 || space == std::string::npos) {
    ADD_FAILURE() << "creating queue " << name << " with a dead-letter queue failed: " << result.err;
    return {};
  }
  std::string dlq = result.out.substr(space + 1);
  while (!dlq.empty() && (dlq.back() == '\n' || dlq.back() == '\r')) dlq.pop_back();
  return {result.out.substr(0, space), dlq};
}

std::vector<nlohmann::json> DrainWithBoto3(const std::string& url, double seconds) {
  std::vector<std::string> args = {"drain", url};
  if (seconds > 0) args.push_back(std::to_string(seconds));
  ProcessResult result = RunTool(args);
  std::vector<nlohmann::json> messages;
  if (result.exit_code != 0) {
    ADD_FAILURE() << "draining " << url << " with boto3 failed: " << result.err;
    return messages;
  }
  std::istringstream lines(result.out);
  for (std::string line; std::getline(lines, line);) {
    nlohmann::json message = nlohmann::json::parse(line, nullptr, false);
    if (message.is_discarded()) {
      ADD_FAILURE() << "sqs_tool printed a line that is not JSON: " << line;
      continue;
    }
    messages.push_back(std::move(message));
  }
  return messages;
}

}  // namespace taskpipe::testing
