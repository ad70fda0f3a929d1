#include "app/queue_wiring.h"

#include <utility>

#include "aws/aws_config.h"
#include "net/curl_http_client.h"
#include "queue/in_memory_queue.h"
#include "queue/sqs_queue.h"

namespace taskpipe {
namespace {

bool EndsWith(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

StatusOr<OpenedQueue> OpenMemoryQueue(const QueueConfig& config, Clock& clock) {
  OpenedQueue opened;
  InMemoryQueueOptions options;
  options.visibility_timeout = config.visibility_timeout;
  options.retention = config.retention;
  options.max_receive_count = config.max_receive_count;
  if (config.max_receive_count > 0) {
    InMemoryQueueOptions dlq_options;
    dlq_options.retention = config.retention;
    dlq_options.name = "local-dead-letter";
    StatusOr<std::unique_ptr<Queue>> dlq = NewInMemoryQueue(dlq_options, clock);
    if (!dlq.ok()) return dlq.status();
    opened.dead_letter = std::move(*dlq);
    options.dead_letter_queue = opened.dead_letter.get();
  }
  StatusOr<std::unique_ptr<Queue>> queue = NewInMemoryQueue(options, clock);
  if (!queue.ok()) return queue.status();
  opened.queue = std::move(*queue);
  opened.description = "memory (visibility " + std::to_string(config.visibility_timeout.count()) + "s" +
                       (config.max_receive_count > 0
                            ? ", dead-letter after " + std::to_string(config.max_receive_count) + " receives)"
                            : ", no dead-letter queue)");
  return opened;
}

StatusOr<OpenedQueue> OpenSqsQueue(const QueueConfig& config, Clock& clock, Redactor& redactor) {
  OpenedQueue opened;
  AwsEnvironment env;
  StatusOr<std::string> region = ResolveRegion(config.region, env);
  if (!region.ok()) return region.status();
  const std::string endpoint = ResolveSqsEndpoint(config.endpoint, *region, env.getenv);

  StatusOr<std::unique_ptr<HttpClient>> http = NewCurlHttpClient();
  if (!http.ok()) return http.status();
  opened.http = std::move(*http);
  CredentialsChainOptions credentials_options;
  credentials_options.clock = &clock;
  credentials_options.redactor = &redactor;
  opened.credentials = NewDefaultCredentialsChain(credentials_options);

  SqsQueueOptions options;
  options.queue_url = config.url;
  options.queue_name = config.name;
  options.endpoint = endpoint;
  options.region = *region;
  options.protocol = config.protocol;
  opened.sqs_counters = std::make_unique<SqsRequestCounters>();
  options.counters = opened.sqs_counters.get();
  StatusOr<std::unique_ptr<Queue>> queue = NewSqsQueue(options, *opened.http, *opened.credentials, clock);
  if (!queue.ok()) return queue.status();
  opened.queue = std::move(*queue);
  opened.fifo = EndsWith(config.url.empty() ? config.name : config.url, ".fifo");
  // A queue URL names an account and a queue, nothing secret.
  opened.description = "sqs " + (config.url.empty() ? "queue " + config.name + " at " + endpoint : config.url) +
                       " (" + config.protocol + " protocol, region " + *region + ")";
  return opened;
}

}  // namespace

StatusOr<OpenedQueue> OpenQueue(const QueueConfig& config, Clock& clock, Redactor& redactor) {
  if (config.backend == "sqs") return OpenSqsQueue(config, clock, redactor);
  return OpenMemoryQueue(config, clock);
}

}  // namespace taskpipe
