// The `--metrics-port` endpoint of `taskpipe consume` and `taskpipe run`:
//  - GET /healthz: 200 while receiving works; 503 once every ReceiveMessage for `unhealthy_after`
//    has failed (the queue is unreachable, or the credentials stopped working). The body is a
//    small JSON object saying why, for a human reading a probe's log.
//  - GET /metrics: Prometheus text exposition format 0.0.4
//    (https://prometheus.io/docs/instrumenting/exposition_formats/): task and message counters,
//    in-flight gauges, a handler duration histogram, SQS requests and errors by action,
//    notifications sent and dropped by target.
// Everything here is pure: the app takes a MetricsSnapshot when a request comes and
// ServeMetricsRequest() turns it into the reply, so tests need neither a socket nor a clock.
#ifndef TASKPIPE_APP_METRICS_H_
#define TASKPIPE_APP_METRICS_H_

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "common/clock.h"
#include "consumer/consumer.h"
#include "net/http_server.h"
#include "notify/notify.h"
#include "queue/sqs_queue.h"

namespace taskpipe {

struct MetricsSnapshot {
  ConsumerStats consumer{};
  int workers = 0;
  bool draining = false;  // a shutdown signal came: finishing what runs
  std::vector<SqsRequestCounters::Row> sqs{};  // empty with the memory backend
  std::map<std::string, NotifyStats> notify{};  // by target name
  std::string version{};
};

// The /metrics body.
std::string RenderPrometheusMetrics(const MetricsSnapshot& snapshot);

struct HealthVerdict {
  bool healthy = true;
  std::string body;  // JSON: {"status": "ok" | "draining" | "unavailable", ...}
};

// Unhealthy when receives have failed without a success in between for at least `unhealthy_after`
// by `now` (ConsumerStats::receive_failing_since). Draining is healthy: a probe must not kill a
// consumer that is finishing its tasks.
HealthVerdict EvaluateHealth(const MetricsSnapshot& snapshot, Clock::time_point now,
                             std::chrono::seconds unhealthy_after);

// The reply to one request: /healthz, /metrics, or 404 naming the two.
HttpServerReply ServeMetricsRequest(const HttpServerRequest& request, const MetricsSnapshot& snapshot,
                                    Clock::time_point now, std::chrono::seconds unhealthy_after);

// "http://127.0.0.1:9464", "http://[::1]:9464".
std::string MetricsBaseUrl(const std::string& address, int port);

}  // namespace taskpipe

#endif  // TASKPIPE_APP_METRICS_H_
