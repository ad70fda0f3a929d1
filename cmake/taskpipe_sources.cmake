# The library's sources and warning flags, in one place for the two builds that compile them: the
# top-level project (taskpipe_lib) and fuzz/ (clang + libFuzzer, a separate project). Paths are
# relative to the project root; each includer prepends its own path to it.

# What the parsers, payload builders and the harness of fuzz/ reach: no curl, no sockets, no
# threads of their own. fuzz/ compiles these alone.
set(TASKPIPE_CORE_SOURCES
  aws/sigv4.cc
  aws/sqs_wire.cc
  common/clock.cc
  common/duration.cc
  common/logging.cc
  common/quote.cc
  common/redact.cc
  common/status.cc
  common/task_result.cc
  common/time_format.cc
  common/time_zone.cc
  config/config_json.cc
  config/json_text.cc
  config/tasks_file.cc
  net/http_client.cc
  notify/dispatcher.cc
  notify/webhook_format.cc
  notify/webhook_target.cc
  producer/envelope.cc
  producer/schedule.cc
  queue/validate.cc
)

# Everything else of taskpipe_lib.
set(TASKPIPE_LIB_SOURCES
  ${TASKPIPE_CORE_SOURCES}
  aws/aws_config.cc
  aws/credentials.cc
  consumer/consumer.cc
  consumer/exec_handler.cc
  consumer/handler_registry.cc
  consumer/http_handler.cc
  consumer/log_handler.cc
  consumer/output_tail.cc
  consumer/retry_policy.cc
  net/curl_http_client.cc
  net/http_server.cc
  producer/producer.cc
  producer/scheduler.cc
  queue/in_memory_queue.cc
  queue/sqs_queue.cc
)

# The project's warning flags (both g++ and clang++ take them).
set(TASKPIPE_WARNING_FLAGS -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
                           -Woverloaded-virtual -Wnull-dereference -Wimplicit-fallthrough)
