// The "http" handler: one HTTP request per task, e.g. to an application's admin endpoint.
//
//  - Sends HandlerConfig::method to HandlerConfig::url with HandlerConfig::headers (already
//    ${VAR}-expanded by the config loader), plus "Content-Type: application/json" (unless the
//    config sets a Content-Type), "X-Taskpipe-Job", "X-Taskpipe-Message-Id" and
//    "X-Taskpipe-Receive-Count" (a configured header of the same name replaces ours). The body is
//    the task JSON.
//  - The HTTP timeout is min(HandlerConfig::timeout, time left until task.deadline).
//  - 2xx is success. Any other status fails with "HTTP 503" (the code as HttpStatusToStatus()
//    maps it); the response body's tail (kMaxHandlerOutputBytes) is the outcome's output either
//    way. Transport errors fail with the HttpClient's message; a timeout is kDeadlineExceeded.
//  - The URL (beyond scheme://host:port) and header values may be secrets: they never appear in an
//    outcome's message, and exact occurrences of them in the response body are masked in the
//    output.
//  - Cancellation: an HttpClient exchange cannot be interrupted through its interface, so a `stop`
//    requested while the request is in flight is not seen until it ends; the HTTP timeout bounds
//    that wait. A `stop` requested before the request starts returns kCancelled at once.
//
// Run() is thread-safe (HttpClient::Send() is).
#ifndef TASKPIPE_CONSUMER_HTTP_HANDLER_H_
#define TASKPIPE_CONSUMER_HTTP_HANDLER_H_

#include <memory>

#include "common/status.h"
#include "config/config.h"
#include "consumer/handler.h"

namespace taskpipe {

// Fails with kInvalidArgument for an empty URL, a scheme other than http/https, an empty or
// malformed method, a header name or value with CR/LF (values are never quoted: they may be
// secrets), or a timeout <= 0. `deps.http` and `deps.clock` must outlive the handler.
StatusOr<std::unique_ptr<Handler>> NewHttpHandler(const HandlerConfig& config, const HandlerDeps& deps);

}  // namespace taskpipe

#endif  // TASKPIPE_CONSUMER_HTTP_HANDLER_H_
