// The SQS server the integration tests talk to: moto_server on loopback, started by
// scripts/test.sh, which exports TASKPIPE_TEST_SQS_ENDPOINT. Plus boto3 (tests/testing/sqs_tool.py)
// as an independent client to create queues and to check what taskpipe put on them.
#ifndef TASKPIPE_TESTS_TESTING_SQS_SERVER_H_
#define TASKPIPE_TESTS_TESTING_SQS_SERVER_H_

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/testing/run_process.h"

namespace taskpipe::testing {

// TASKPIPE_TEST_SQS_ENDPOINT, or "" after recording a test failure that says to run the tests
// through scripts/test.sh (the tests do not skip: a missing server is a failure).
std::string SqsTestEndpoint();

// The environment a user sets to point the taskpipe binary at the test server: the endpoint,
// dummy credentials, a region, `home` as HOME (an empty folder, so no ~/.aws file of the machine
// interferes), no instance metadata, no proxy, no other AWS settings.
ProcessOptions SqsClientEnv(const std::string& home);

// A queue name unique to this process and call: "<prefix>-<pid>-<n>" (+ ".fifo" when fifo).
std::string UniqueQueueName(const std::string& prefix, bool fifo = false);

// Creates a queue with boto3; returns its URL, or "" after recording a test failure.
// `attributes`: "VisibilityTimeout=1", "FifoQueue=true", ...
std::string CreateTestQueue(const std::string& name, const std::vector<std::string>& attributes = {});

// Creates NAME-dlq, then NAME with a redrive policy to it after `max_receives` receives (boto3);
// returns {url, dead_letter_url}, or {"", ""} after recording a test failure.
std::pair<std::string, std::string> CreateTestQueueWithDeadLetter(const std::string& name, int max_receives);

// Receives and deletes every message on `url` with boto3, waiting up to `seconds` for more when
// `seconds` > 0 (else until the first empty receive). Each element: {"body", "attributes",
// "message_attributes"}.
std::vector<nlohmann::json> DrainWithBoto3(const std::string& url, double seconds = 0);

}  // namespace taskpipe::testing

#endif  // TASKPIPE_TESTS_TESTING_SQS_SERVER_H_
