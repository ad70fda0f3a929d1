#include "app/metrics.h"

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string_view>
#include <utility>

#include "common/duration.h"

namespace taskpipe {
namespace {

using std::chrono::milliseconds;

// A label value: backslash, double quote and line feed escaped (the exposition format's rule).
std::string EscapeLabel(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c; break;
    }
  }
  return out;
}

// Milliseconds as seconds, with no trailing zeros: 5 -> "0.005", 2500 -> "2.5", 60000 -> "60".
std::string Seconds(milliseconds d) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%lld.%03lld", static_cast<long long>(d.count() / 1000),
                static_cast<long long>(d.count() % 1000));
  std::string s = buffer;
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

class Writer {
 public:
  // Starts a metric family: its HELP and TYPE lines.
  void Family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;  // every help text here is a constant without backslashes or line feeds
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  // One sample; `labels` as name/value pairs (values escaped here).
  template <typename Number>
  void Sample(std::string_view name, Number value, std::vector<std::pair<std::string_view, std::string>> labels = {}) {
    SampleText(name, std::to_string(value), std::move(labels));
  }
  void SampleText(std::string_view name, const std::string& value,
                  std::vector<std::pair<std::string_view, std::string>> labels = {}) {
    out_ += name;
    if (!labels.empty()) {
      out_ += '{';
      for (std::size_t i = 0; i < labels.size(); ++i) {
        if (i > 0) out_ += ',';
        out_ += labels[i].first;
        out_ += "=\"";
        out_ += EscapeLabel(labels[i].second);
        out_ += '"';
      }
      out_ += '}';
    }
    out_ += ' ';
    out_ += value;
    out_ += '\n';
  }
  // A family with one unlabelled sample.
  template <typename Number>
  void Single(std::string_view name, std::string_view type, std::string_view help, Number value) {
    Family(name, type, help);
    Sample(name, value);
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

}  // namespace

std::string RenderPrometheusMetrics(const MetricsSnapshot& s) {
  const ConsumerStats& c = s.consumer;
  Writer w;
  w.Family("taskpipe_build_info", "gauge", "The taskpipe version serving these metrics.");
  w.Sample("taskpipe_build_info", 1, {{"version", s.version}});

  w.Single("taskpipe_messages_received_total", "counter", "Messages received from the queue.", c.received);
  w.Single("taskpipe_tasks_succeeded_total", "counter",
           "Tasks whose handler succeeded; their messages are deleted.", c.succeeded);
  w.Family("taskpipe_tasks_failed_total", "counter",
           "Tasks that did not succeed, by reason: failure (the handler failed, or shutdown interrupted it), "
           "timeout (it ran past its job's timeout), invalid (not a taskpipe message, or an unknown job).");
  w.Sample("taskpipe_tasks_failed_total", c.failed, {{"reason", "failure"}});
  w.Sample("taskpipe_tasks_failed_total", c.timed_out, {{"reason", "timeout"}});
  w.Sample("taskpipe_tasks_failed_total", c.invalid, {{"reason", "invalid"}});
  w.Single("taskpipe_tasks_retried_total", "counter",
           "Failed tasks whose message was hidden for a back-off, to be delivered again.", c.retried);
  w.Single("taskpipe_tasks_dead_lettered_total", "counter",
           "Failed tasks on their last delivery: the queue's redrive moves them to the dead-letter queue "
           "(counted when the queue's maxReceiveCount is known).",
           c.dead_lettered);
  w.Single("taskpipe_messages_released_total", "counter",
           "Messages given back with visibility 0 at shutdown, for another consumer.", c.released);
  w.Single("taskpipe_messages_deleted_total", "counter", "Messages deleted after their task succeeded.", c.deleted);
  w.Single("taskpipe_delete_errors_total", "counter",
           "Deletes and visibility changes given up on (the message will be delivered again).", c.delete_errors);
  w.Single("taskpipe_visibility_extensions_total", "counter",
           "Visibility extensions of messages whose handlers were still running.", c.extended);
  w.Single("taskpipe_visibility_extension_errors_total", "counter",
           "Visibility extensions that failed for good (the task may run twice).", c.extend_errors);
  w.Single("taskpipe_receive_errors_total", "counter", "ReceiveMessage calls that failed.", c.receive_errors);
  w.Single("taskpipe_receive_errors_in_a_row", "gauge",
           "ReceiveMessage calls that failed since the last one that worked.", c.receive_errors_in_a_row);
  w.Single("taskpipe_tasks_in_flight", "gauge",
           "Messages received and not yet finished (waiting for a worker, running, or reporting).", c.in_flight);
  w.Single("taskpipe_handlers_running", "gauge", "Handlers running now.", c.running);
  w.Single("taskpipe_workers", "gauge", "Workers: the most handlers that run at once.", s.workers);
  w.Single("taskpipe_draining", "gauge", "1 once a shutdown signal came and running tasks are finishing.",
           s.draining ? 1 : 0);

  w.Family("taskpipe_handler_duration_seconds", "histogram", "How long handlers ran.");
  std::int64_t cumulative = 0;
  for (std::size_t i = 0; i < kHandlerDurationBounds.size(); ++i) {
    cumulative += c.handler_duration_buckets[i];
    w.Sample("taskpipe_handler_duration_seconds_bucket", cumulative, {{"le", Seconds(kHandlerDurationBounds[i])}});
  }
  cumulative += c.handler_duration_buckets.back();
  w.Sample("taskpipe_handler_duration_seconds_bucket", cumulative, {{"le", "+Inf"}});
  w.SampleText("taskpipe_handler_duration_seconds_sum", Seconds(c.handler_duration_total));
  w.Sample("taskpipe_handler_duration_seconds_count", c.handler_runs);

  if (!s.sqs.empty()) {
    w.Family("taskpipe_sqs_requests_total", "counter", "SQS requests by action, retries included.");
    for (const SqsRequestCounters::Row& row : s.sqs) {
      w.Sample("taskpipe_sqs_requests_total", row.requests, {{"action", row.action}});
    }
    w.Family("taskpipe_sqs_request_errors_total", "counter",
             "SQS requests that failed (transport errors and error replies), by action.");
    for (const SqsRequestCounters::Row& row : s.sqs) {
      w.Sample("taskpipe_sqs_request_errors_total", row.errors, {{"action", row.action}});
    }
  }

  if (!s.notify.empty()) {
    w.Family("taskpipe_notifications_sent_total", "counter", "Notifications the chat platform accepted, by target.");
    for (const auto& [target, stats] : s.notify) {
      w.Sample("taskpipe_notifications_sent_total", stats.delivered, {{"target", target}});
    }
    w.Family("taskpipe_notifications_dropped_total", "counter",
             "Notifications given up on, by target and reason: full (the outbox was full), dead (the webhook is "
             "gone or refused our credentials), rejected (the platform refused the payload), failed (retries "
             "used up), deadline (still queued at the shutdown deadline).");
    for (const auto& [target, stats] : s.notify) {
      const std::pair<const char*, std::uint64_t> reasons[] = {{"full", stats.dropped_full},
                                                                {"dead", stats.dropped_dead},
                                                                {"rejected", stats.dropped_rejected},
                                                                {"failed", stats.dropped_failed},
                                                                {"deadline", stats.dropped_deadline}};
      for (const auto& [reason, n] : reasons) {
        w.Sample("taskpipe_notifications_dropped_total", n, {{"target", target}, {"reason", reason}});
      }
    }
    w.Family("taskpipe_notifications_rate_limited_total", "counter",
             "429 replies from the chat platform (each delayed the target), by target.");
    for (const auto& [target, stats] : s.notify) {
      w.Sample("taskpipe_notifications_rate_limited_total", stats.rate_limited, {{"target", target}});
    }
    w.Family("taskpipe_notifications_pending", "gauge", "Notifications queued or being delivered, by target.");
    for (const auto& [target, stats] : s.notify) {
      w.Sample("taskpipe_notifications_pending", stats.pending, {{"target", target}});
    }
  }
  return w.Take();
}

HealthVerdict EvaluateHealth(const MetricsSnapshot& snapshot, Clock::time_point now,
                             std::chrono::seconds unhealthy_after) {
  const ConsumerStats& c = snapshot.consumer;
  nlohmann::json body;
  HealthVerdict verdict;
  const bool failing = c.receive_failing_since.has_value();
  const milliseconds failing_for =
      failing ? std::max(milliseconds(0), std::chrono::duration_cast<milliseconds>(now - *c.receive_failing_since))
              : milliseconds(0);
  if (failing && failing_for >= unhealthy_after) {
    verdict.healthy = false;
    body["status"] = "unavailable";
    body["reason"] = "every receive for " + FormatDuration(std::chrono::duration_cast<std::chrono::seconds>(failing_for)) +
                     " has failed (" + std::to_string(c.receive_errors_in_a_row) +
                     " in a row); unhealthy after " + FormatDuration(unhealthy_after) +
                     ". The log has each error.";
  } else {
    body["status"] = snapshot.draining ? "draining" : "ok";
  }
  body["receive_errors_in_a_row"] = c.receive_errors_in_a_row;
  body["failing_for_seconds"] = static_cast<double>(failing_for.count()) / 1000.0;
  body["in_flight"] = c.in_flight;
  body["running"] = c.running;
  verdict.body = body.dump() + "\n";
  return verdict;
}

std::string MetricsBaseUrl(const std::string& address, int port) {
  const bool v6 = address.find(':') != std::string::npos;
  return "http://" + (v6 ? "[" + address + "]" : address) + ":" + std::to_string(port);
}

HttpServerReply ServeMetricsRequest(const HttpServerRequest& request, const MetricsSnapshot& snapshot,
                                    Clock::time_point now, std::chrono::seconds unhealthy_after) {
  HttpServerReply reply;
  if (request.path == "/metrics") {
    // https://prometheus.io/docs/instrumenting/exposition_formats/: "text/plain; version=0.0.4".
    reply.content_type = "text/plain; version=0.0.4; charset=utf-8";
    reply.body = RenderPrometheusMetrics(snapshot);
  } else if (request.path == "/healthz") {
    HealthVerdict health = EvaluateHealth(snapshot, now, unhealthy_after);
    reply.status = health.healthy ? 200 : 503;
    reply.content_type = "application/json";
    reply.body = std::move(health.body);
  } else {
    reply.status = 404;
    reply.body = "not found: this port serves GET /healthz and GET /metrics\n";
  }
  return reply;
}

}  // namespace taskpipe
