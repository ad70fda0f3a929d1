// The metrics endpoint's pure parts: the Prometheus text (checked line by line and by the real
// parser of the Python client library), the health verdict, and the routing of requests.
#include "app/metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "tests/testing/run_process.h"

namespace taskpipe {
namespace {

using ::taskpipe::testing::ProcessResult;
using ::taskpipe::testing::RunProcess;
using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

MetricsSnapshot Sample() {
  MetricsSnapshot s;
  s.version = "9.8.7";
  s.workers = 16;
  ConsumerStats& c = s.consumer;
  c.received = 120;
  c.succeeded = 100;
  c.failed = 7;
  c.timed_out = 2;
  c.invalid = 1;
  c.retried = 10;
  c.dead_lettered = 3;
  c.released = 4;
  c.deleted = 99;
  c.delete_errors = 1;
  c.extended = 12;
  c.extend_errors = 0;
  c.receive_errors = 5;
  c.receive_errors_in_a_row = 2;
  c.in_flight = 6;
  c.running = 5;
  c.handler_duration_buckets[0] = 50;  // <= 5 ms
  c.handler_duration_buckets[7] = 40;  // (500 ms, 1 s]
  c.handler_duration_buckets.back() = 2;  // > 1 h
  c.handler_runs = 92;
  c.handler_duration_total = 14'403'250ms;
  s.sqs = {{.action = "DeleteMessageBatch", .requests = 10, .errors = 0},
           {.action = "ReceiveMessage", .requests = 30, .errors = 5}};
  NotifyStats slack;
  slack.delivered = 8;
  slack.dropped_full = 1;
  slack.dropped_deadline = 2;
  slack.rate_limited = 3;
  slack.pending = 4;
  s.notify["team-slack"] = slack;
  s.notify["odd\"name\\with\nbreak"] = NotifyStats{};
  return s;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(RenderPrometheusMetricsTest, CountersGaugesAndLabels) {
  const std::string text = RenderPrometheusMetrics(Sample());
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');  // "The last line must end with a line feed character."
  const std::vector<std::string> lines = Lines(text);
  auto has = [&](const std::string& line) { return std::find(lines.begin(), lines.end(), line) != lines.end(); };
  EXPECT_TRUE(has("taskpipe_build_info{version=\"9.8.7\"} 1"));
  EXPECT_TRUE(has("# TYPE taskpipe_messages_received_total counter"));
  EXPECT_TRUE(has("taskpipe_messages_received_total 120"));
  EXPECT_TRUE(has("taskpipe_tasks_succeeded_total 100"));
  EXPECT_TRUE(has("taskpipe_tasks_failed_total{reason=\"failure\"} 7"));
  EXPECT_TRUE(has("taskpipe_tasks_failed_total{reason=\"timeout\"} 2"));
  EXPECT_TRUE(has("taskpipe_tasks_failed_total{reason=\"invalid\"} 1"));
  EXPECT_TRUE(has("taskpipe_tasks_retried_total 10"));
  EXPECT_TRUE(has("taskpipe_tasks_dead_lettered_total 3"));
  EXPECT_TRUE(has("taskpipe_messages_released_total 4"));
  EXPECT_TRUE(has("taskpipe_receive_errors_total 5"));
  EXPECT_TRUE(has("# TYPE taskpipe_tasks_in_flight gauge"));
  EXPECT_TRUE(has("taskpipe_tasks_in_flight 6"));
  EXPECT_TRUE(has("taskpipe_handlers_running 5"));
  EXPECT_TRUE(has("taskpipe_workers 16"));
  EXPECT_TRUE(has("taskpipe_draining 0"));
  EXPECT_TRUE(has("taskpipe_sqs_requests_total{action=\"ReceiveMessage\"} 30"));
  EXPECT_TRUE(has("taskpipe_sqs_request_errors_total{action=\"ReceiveMessage\"} 5"));
  EXPECT_TRUE(has("taskpipe_sqs_request_errors_total{action=\"DeleteMessageBatch\"} 0"));
  EXPECT_TRUE(has("taskpipe_notifications_sent_total{target=\"team-slack\"} 8"));
  EXPECT_TRUE(has("taskpipe_notifications_dropped_total{target=\"team-slack\",reason=\"full\"} 1"));
  EXPECT_TRUE(has("taskpipe_notifications_dropped_total{target=\"team-slack\",reason=\"deadline\"} 2"));
  EXPECT_TRUE(has("taskpipe_notifications_rate_limited_total{target=\"team-slack\"} 3"));
  EXPECT_TRUE(has("taskpipe_notifications_pending{target=\"team-slack\"} 4"));
  // Backslash, double quote and line feed in a label value are escaped.
  EXPECT_TRUE(has("taskpipe_notifications_sent_total{target=\"odd\\\"name\\\\with\\nbreak\"} 0"));
  // Each family is declared once.
  EXPECT_EQ(std::count(lines.begin(), lines.end(), "# TYPE taskpipe_tasks_failed_total counter"), 1);
}

TEST(RenderPrometheusMetricsTest, HistogramBucketsAreCumulativeWithSumAndCount) {
  const std::vector<std::string> lines = Lines(RenderPrometheusMetrics(Sample()));
  auto has = [&](const std::string& line) { return std::find(lines.begin(), lines.end(), line) != lines.end(); };
  EXPECT_TRUE(has("# TYPE taskpipe_handler_duration_seconds histogram"));
  EXPECT_TRUE(has("taskpipe_handler_duration_seconds_bucket{le=\"0.005\"} 50"));
  EXPECT_TRUE(has("taskpipe_handler_duration_seconds_bucket{le=\"0.5\"} 50"));
  EXPECT_TRUE(has("taskpipe_handler_duration_seconds_bucket{le=\"1\"} 90"));
  EXPECT_TRUE(has("taskpipe_handler_duration_seconds_bucket{le=\"2.5\"} 90"));
  EXPECT_TRUE(has("taskpipe_handler_duration_seconds_bucket{le=\"3600\"} 90"));
  EXPECT_TRUE(has("taskpipe_handler_duration_seconds_bucket{le=\"+Inf\"} 92"));
  EXPECT_TRUE(has("taskpipe_handler_duration_seconds_sum 14403.25"));
  EXPECT_TRUE(has("taskpipe_handler_duration_seconds_count 92"));
}

TEST(RenderPrometheusMetricsTest, TheMemoryBackendHasNoSqsFamiliesAndNoTargetsNoNotifyFamilies) {
  MetricsSnapshot s = Sample();
  s.sqs.clear();
  s.notify.clear();
  const std::string text = RenderPrometheusMetrics(s);
  EXPECT_THAT(text, Not(HasSubstr("taskpipe_sqs_")));
  EXPECT_THAT(text, Not(HasSubstr("taskpipe_notifications_")));
}

// The real parser: prometheus_client's text_string_to_metric_families (Debian's
// python3-prometheus-client, installed by scripts/setup.sh). It rejects malformed exposition text.
TEST(RenderPrometheusMetricsTest, ThePythonClientLibraryParsesIt) {
  char path[] = "/tmp/taskpipe-metrics-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  {
    std::ofstream out(path, std::ios::binary);
    out << RenderPrometheusMetrics(Sample());
  }
  const char* script = R"py(
import json, sys
from prometheus_client.parser import text_string_to_metric_families
families = {}
for family in text_string_to_metric_families(open(sys.argv[1]).read()):
    families[family.name] = {"type": family.type,
                             "samples": [[s.name, s.labels, s.value] for s in family.samples]}
print(json.dumps(families))
)py";
  ProcessResult r = RunProcess({"/usr/bin/python3", "-c", script, path});
  std::remove(path);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json families = nlohmann::json::parse(r.out);
  EXPECT_EQ(families["taskpipe_messages_received"]["type"], "counter");
  EXPECT_EQ(families["taskpipe_handler_duration_seconds"]["type"], "histogram");
  EXPECT_EQ(families["taskpipe_tasks_in_flight"]["type"], "gauge");
  bool saw_odd_target = false;
  for (const auto& sample : families["taskpipe_notifications_sent"]["samples"]) {
    if (sample[1]["target"] == "odd\"name\\with\nbreak") saw_odd_target = true;
  }
  EXPECT_TRUE(saw_odd_target);
  double inf_bucket = -1;
  for (const auto& sample : families["taskpipe_handler_duration_seconds"]["samples"]) {
    if (sample[0] == "taskpipe_handler_duration_seconds_bucket" && sample[1]["le"] == "+Inf") inf_bucket = sample[2];
  }
  EXPECT_EQ(inf_bucket, 92);
}

TEST(EvaluateHealthTest, HealthyUntilReceivesHaveFailedForTheWholeWindow) {
  MetricsSnapshot s;
  const Clock::time_point now = Clock::time_point(1000s);
  HealthVerdict ok = EvaluateHealth(s, now, 60s);
  EXPECT_TRUE(ok.healthy);
  EXPECT_EQ(nlohmann::json::parse(ok.body)["status"], "ok");

  s.consumer.receive_failing_since = now - 59s;
  s.consumer.receive_errors_in_a_row = 3;
  HealthVerdict failing = EvaluateHealth(s, now, 60s);
  EXPECT_TRUE(failing.healthy);  // not yet
  EXPECT_EQ(nlohmann::json::parse(failing.body)["receive_errors_in_a_row"], 3);
  EXPECT_EQ(nlohmann::json::parse(failing.body)["failing_for_seconds"], 59.0);

  s.consumer.receive_failing_since = now - 60s;
  HealthVerdict down = EvaluateHealth(s, now, 60s);
  EXPECT_FALSE(down.healthy);
  const nlohmann::json body = nlohmann::json::parse(down.body);
  EXPECT_EQ(body["status"], "unavailable");
  EXPECT_THAT(body["reason"].get<std::string>(), HasSubstr("every receive for 1m has failed (3 in a row)"));
}

TEST(EvaluateHealthTest, DrainingIsHealthy) {
  MetricsSnapshot s;
  s.draining = true;
  HealthVerdict verdict = EvaluateHealth(s, Clock::time_point(1s), 60s);
  EXPECT_TRUE(verdict.healthy);
  EXPECT_EQ(nlohmann::json::parse(verdict.body)["status"], "draining");
}

TEST(ServeMetricsRequestTest, RoutesHealthzAndMetricsAndNamesThemOn404) {
  MetricsSnapshot s = Sample();
  const Clock::time_point now(100s);
  HttpServerReply metrics = ServeMetricsRequest({.method = "GET", .target = "/metrics", .path = "/metrics"}, s, now, 60s);
  EXPECT_EQ(metrics.status, 200);
  EXPECT_EQ(metrics.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(metrics.body, RenderPrometheusMetrics(s));

  HttpServerReply health = ServeMetricsRequest({.method = "GET", .target = "/healthz", .path = "/healthz"}, s, now, 60s);
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.content_type, "application/json");
  s.consumer.receive_failing_since = now - 61s;
  EXPECT_EQ(ServeMetricsRequest({.method = "GET", .target = "/healthz?x", .path = "/healthz"}, s, now, 60s).status, 503);

  HttpServerReply other = ServeMetricsRequest({.method = "GET", .target = "/", .path = "/"}, s, now, 60s);
  EXPECT_EQ(other.status, 404);
  EXPECT_THAT(other.body, AllOf(HasSubstr("/healthz"), HasSubstr("/metrics")));
}

TEST(MetricsBaseUrlTest, BracketsIpv6) {
  EXPECT_EQ(MetricsBaseUrl("127.0.0.1", 9464), "http://127.0.0.1:9464");
  EXPECT_EQ(MetricsBaseUrl("::1", 9464), "http://[::1]:9464");
}

}  // namespace
}  // namespace taskpipe
