// Opens the queue a config names, with what it needs: the memory backend (with its dead-letter
// queue), or SQS over libcurl with the default credential chain, region and endpoint.
#ifndef TASKPIPE_APP_QUEUE_WIRING_H_
#define TASKPIPE_APP_QUEUE_WIRING_H_

#include <memory>
#include <string>

#include "aws/credentials.h"
#include "common/clock.h"
#include "common/redact.h"
#include "common/status.h"
#include "config/config.h"
#include "net/http_client.h"
#include "queue/queue.h"
#include "queue/sqs_queue.h"

namespace taskpipe {

// Members are destroyed bottom-up: the queue before what it uses.
struct OpenedQueue {
  std::unique_ptr<HttpClient> http;                  // sqs only
  std::unique_ptr<CredentialsProvider> credentials;  // sqs only
  std::unique_ptr<SqsRequestCounters> sqs_counters;  // sqs only: the queue's requests, for metrics
  std::unique_ptr<Queue> dead_letter;                // memory only, when max_receive_count > 0
  std::unique_ptr<Queue> queue;
  bool fifo = false;
  std::string description;  // for logs: "sqs http://127.0.0.1:4566/000000000000/tasks (json protocol)"
};

// Errors: kInvalidArgument for settings that cannot work (no region anywhere); the backend's
// errors (GetQueueUrl of a queue that does not exist: kNotFound).
StatusOr<OpenedQueue> OpenQueue(const QueueConfig& config, Clock& clock, Redactor& redactor);

}  // namespace taskpipe

#endif  // TASKPIPE_APP_QUEUE_WIRING_H_
