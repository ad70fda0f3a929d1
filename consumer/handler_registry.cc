#include <string>
#include <utility>
#include <vector>

#include "common/quote.h"
#include "consumer/exec_handler.h"
#include "consumer/handler.h"
#include "consumer/http_handler.h"
#include "consumer/log_handler.h"

namespace taskpipe {

HandlerRegistry HandlerRegistry::WithBuiltins() {
  HandlerRegistry registry;
  registry.Register("exec", [](const HandlerConfig& config, const HandlerDeps& deps) {
    return NewExecHandler(config, deps);
  });
  registry.Register("http", [](const HandlerConfig& config, const HandlerDeps& deps) {
    return NewHttpHandler(config, deps);
  });
  registry.Register("log", [](const HandlerConfig& config, const HandlerDeps& deps) {
    return NewLogHandler(config, deps);
  });
  return registry;
}

void HandlerRegistry::Register(std::string name, HandlerFactory factory) {
  factories_.insert_or_assign(std::move(name), std::move(factory));
}

std::vector<std::string> HandlerRegistry::Names() const {
  std::vector<std::string> names;
  names.reserve(factories_.size());
  for (const auto& [name, factory] : factories_) names.push_back(name);  // std::map: sorted
  return names;
}

StatusOr<std::unique_ptr<Handler>> HandlerRegistry::Create(const HandlerConfig& config,
                                                           const HandlerDeps& deps) const {
  auto it = factories_.find(config.type);
  if (it == factories_.end() || !it->second) {
    std::string known;
    for (const auto& [name, factory] : factories_) {
      if (!known.empty()) known += ", ";
      known += name;
    }
    if (known.empty()) known = "none registered";
    return InvalidArgumentError("unknown handler type " + QuoteForError(config.type) +
                                " (known types: " + known + ")");
  }
  StatusOr<std::unique_ptr<Handler>> handler = it->second(config, deps);
  // A factory that "succeeds" with a null handler would crash the first worker that runs it.
  if (handler.ok() && *handler == nullptr) {
    return InternalError("handler factory for type " + QuoteForError(config.type) + " returned no handler");
  }
  return handler;
}

}  // namespace taskpipe
