#include "config/config_json.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <map>
#include <utility>

#include "common/duration.h"
#include "config/json_text.h"
#include "config/tasks_file.h"

namespace taskpipe {
namespace {

using json = nlohmann::json;
using std::chrono::seconds;

// SQS's own limits (DESIGN.md, "Queue").
constexpr seconds kMaxVisibilityTimeout{12 * 3600};
constexpr seconds kMaxWaitTime{20};
constexpr seconds kMinRetention{60};
constexpr seconds kMaxRetention{14 * 24 * 3600};
constexpr int kMaxWorkers = 1024;
constexpr int kMaxBatchSize = 10;
constexpr int kMaxPollers = 16;
constexpr size_t kMaxNameLength = 80;
// Shorter values are not collected as secrets: masking them would garble unrelated log text, and
// they cannot be real credentials.
constexpr size_t kMinSecretLength = 4;

// ---------------------------------------------------------------------------------------------
// Names and suggestions

// Optimal-string-alignment distance (Levenshtein plus adjacent transpositions), ignoring case.
size_t EditDistance(std::string_view a, std::string_view b) {
  const auto lower = [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); };
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) && lower(a[i - 2]) == lower(b[j - 1])) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

// The candidate closest to `input` if it is close enough to be a likely typo.
template <typename Names>
std::optional<std::string> ClosestName(std::string_view input, const Names& candidates) {
  constexpr size_t kMaxInputForSuggestion = 200;  // keep the quadratic distance cheap
  if (input.size() > kMaxInputForSuggestion) return std::nullopt;
  const size_t allowed = std::clamp<size_t>(input.size() / 3, 1, 3);
  std::optional<std::string> best;
  size_t best_distance = allowed + 1;
  for (const auto& candidate : candidates) {
    if (std::string_view(candidate).size() > kMaxInputForSuggestion) continue;
    const size_t distance = EditDistance(input, candidate);
    // A one-letter name is not a typo of another one-letter name.
    if (distance >= std::max(input.size(), std::string_view(candidate).size())) continue;
    if (distance < best_distance && distance != 0) {
      best = std::string(candidate);
      best_distance = distance;
    } else if (distance == 0 && input != std::string_view(candidate)) {
      return std::string(candidate);  // differs only in case
    }
  }
  return best;
}

template <typename Names>
std::string JoinNames(const Names& names) {
  std::string out;
  for (const auto& name : names) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

// "\"memory\" or \"sqs\"", "\"a\", \"b\" or \"c\"".
std::string QuotedAlternatives(const std::vector<std::string_view>& names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += i + 1 == names.size() ? " or " : ", ";
    out += "\"" + std::string(names[i]) + "\"";
  }
  return out;
}

// `unknown notify target "team-slak" (did you mean "team-slack"? known: ops-discord, team-slack)`.
template <typename Names>
std::string UnknownNameMessage(std::string_view what, std::string_view name, const Names& known,
                               std::string_view none_defined) {
  std::string message = "unknown " + std::string(what) + " " + QuoteText(name);
  if (std::begin(known) == std::end(known)) return message + " (" + std::string(none_defined) + ")";
  message += " (";
  if (std::optional<std::string> suggestion = ClosestName(name, known)) {
    message += "did you mean \"" + *suggestion + "\"? ";
  }
  return message + "known: " + JoinNames(known) + ")";
}

// Job and notify-target names: [A-Za-z0-9_.-]{1,80}.
bool IsValidName(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  });
}

// SQS MessageGroupId: 1-128 characters, alphanumeric and punctuation
// (!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~), i.e. printable ASCII without the space.
bool IsValidMessageGroupId(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  return std::all_of(id.begin(), id.end(), [](char c) { return c >= '!' && c <= '~'; });
}

constexpr std::string_view kNameRule = "1 to 80 characters from A-Z a-z 0-9 _ . -";

// SQS queue names: up to 80 characters from A-Z a-z 0-9 _ -, ".fifo" included for FIFO queues.
bool IsValidQueueName(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  std::string_view base = name;
  if (base.size() > 5 && base.substr(base.size() - 5) == ".fifo") base.remove_suffix(5);
  return std::all_of(base.begin(), base.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

bool IsHttpUrl(std::string_view url) {
  for (char c : url) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return false;
  }
  std::string scheme;
  const size_t colon = url.find("://");
  if (colon == std::string_view::npos) return false;
  for (char c : url.substr(0, colon))
    scheme += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (scheme != "http" && scheme != "https") return false;
  std::string_view authority = url.substr(colon + 3);
  authority = authority.substr(0, authority.find_first_of("/?#"));
  const size_t at = authority.rfind('@');
  if (at != std::string_view::npos) authority.remove_prefix(at + 1);
  return !authority.empty() && authority[0] != ':';
}

// An IPv4 or IPv6 address literal (what the metrics server can bind).
bool IsIpLiteral(const std::string& text) {
  unsigned char buffer[sizeof(in6_addr)];
  return inet_pton(AF_INET, text.c_str(), buffer) == 1 || inet_pton(AF_INET6, text.c_str(), buffer) == 1;
}

bool IsEnvName(std::string_view name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

// Names of variables whose values are taken as secrets wherever they are used (e.g. a token
// passed in an exec handler's argv), in addition to the fields that always hold secrets.
bool LooksLikeSecretName(std::string_view name) {
  std::string upper;
  for (char c : name) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (std::string_view word : {"TOKEN", "SECRET", "PASSW", "KEY", "WEBHOOK", "CREDENTIAL", "AUTH"}) {
    if (upper.find(word) != std::string::npos) return true;
  }
  return false;
}

bool IsHeaderName(std::string_view name) {
  if (name.empty()) return false;
  constexpr std::string_view kTokenPunctuation = "!#$%&'*+-.^_`|~";
  return std::all_of(name.begin(), name.end(), [&](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || kTokenPunctuation.find(c) != std::string_view::npos;
  });
}

// ---------------------------------------------------------------------------------------------
// Loader

class ObjectReader;

// One load: collects problems and secrets while reading the parsed JSON into a Config.
class Loader {
 public:
  Loader(const LoadOptions& options, const std::string& source_path)
      : options_(options), source_path_(source_path) {}

  void Load(std::string_view text, Config* config);
  std::vector<ConfigProblem> TakeProblems() { return std::move(problems_); }

  void Problem(std::string path, std::string message) {
    problems_.push_back({std::move(path), std::move(message), 0, 0});
  }

  // Expands ${VAR}, ${VAR:-default} and $$ in `text`, the value at `path`. Reports problems at
  // `path` and returns nullopt if there are any.
  std::optional<std::string> Expand(std::string_view text, const std::string& path);
  // Expands every string value inside `value` in place (keys are left alone).
  bool ExpandTree(json* value, const std::string& path);

  // Typed reads of `value` (at `path`): report a problem and return nullopt when it is not what
  // is wanted.
  std::optional<std::string> ReadString(const json& value, const std::string& path);
  std::optional<int> ReadInt(const json& value, const std::string& path, int min, int max);
  std::optional<seconds> ReadSeconds(const json& value, const std::string& path, seconds min, seconds max,
                                     std::string_view whose_limit);
  std::optional<std::string> ReadEnum(const json& value, const std::string& path,
                                      const std::vector<std::string_view>& allowed);
  std::optional<std::string> ReadUrl(const json& value, const std::string& path, bool secret);
  std::optional<std::vector<std::string>> ReadStringArray(const json& value, const std::string& path);
  std::optional<std::map<std::string, std::string>> ReadStringMap(
      const json& value, const std::string& path,
      const std::function<std::optional<std::string>(const std::string& key)>& check_key,
      const std::function<std::optional<std::string>(const std::string& value)>& check_value);

 private:
  bool ExpandRange(std::string_view text, size_t* pos, bool nested, bool evaluate, const std::string& path,
                   std::string* out, bool* syntax_error);
  std::optional<std::string> Lookup(std::string_view name, const std::string& path, bool* ok);

  void LoadQueue(const json& value, QueueConfig* queue);
  void LoadConsumer(const json& value, ConsumerConfig* consumer);
  void LoadNotify(const json& value, NotifyConfig* notify);
  void LoadMetrics(const json& value, MetricsConfig* metrics);
  void LoadJobs(const json& value, std::vector<JobConfig>* jobs);
  void LoadJob(const json& value, const std::string& path, JobConfig* job);
  void LoadHandler(const json& value, const std::string& path, HandlerConfig* handler);
  void LoadJobNotify(const json& value, const std::string& path, JobNotifyConfig* notify);
  void LoadTasks(const json& value, const std::string& path, std::vector<json>* tasks);
  void LoadTasksFile(const std::string& file, const std::string& path, JobConfig* job);
  void CheckSchedule(const std::string& path, const JobConfig& job);
  void CollectSecrets(Config* config);

  const LoadOptions& options_;
  const std::string& source_path_;
  std::vector<ConfigProblem> problems_;
  std::vector<std::string> env_secrets_;   // values of variables with secret-looking names
  std::vector<std::string> target_names_;  // keys of notify.targets, for job notify checks
};

// Reads one JSON object: reports its unknown keys on construction, then typed fields on demand.
class ObjectReader {
 public:
  // Reports a problem if `value` is not an object (then ok() is false and every read is a no-op)
  // and one per key not in `keys`.
  ObjectReader(Loader& loader, const json& value, std::string path, std::vector<std::string_view> keys)
      : loader_(loader), path_(std::move(path)), keys_(std::move(keys)) {
    if (!value.is_object()) {
      loader_.Problem(path_, "expected an object, got " + DescribeJsonValue(value));
      return;
    }
    object_ = &value;
    for (const auto& [key, unused] : value.items()) {
      if (std::find(keys_.begin(), keys_.end(), key) != keys_.end()) continue;
      std::string message = "unknown key";
      if (std::optional<std::string> suggestion = ClosestName(key, keys_)) {
        message += " (did you mean \"" + *suggestion + "\"?)";
      } else {
        message += " (known: " + JoinNames(keys_) + ")";
      }
      loader_.Problem(JsonPathKey(path_, key), std::move(message));
    }
  }

  bool ok() const { return object_ != nullptr; }
  const std::string& path() const { return path_; }
  std::string PathOf(std::string_view key) const { return JsonPathKey(path_, key); }

  // The value at `key`, or nullptr when absent. REQUIRES: `key` is one of the known keys.
  const json* Get(std::string_view key) const {
    assert(std::find(keys_.begin(), keys_.end(), key) != keys_.end());
    if (object_ == nullptr) return nullptr;
    const auto it = object_->find(key);
    return it == object_->end() ? nullptr : &*it;
  }
  bool Has(std::string_view key) const { return Get(key) != nullptr; }

  // Reports "required key is missing" when `key` is absent from a valid object.
  bool Require(std::string_view key) {
    if (!ok() || Has(key)) return true;
    loader_.Problem(PathOf(key), "required key is missing");
    return false;
  }

  // Each stores the value at `key` in *out and returns true when it is present and valid.
  bool String(std::string_view key, std::string* out) {
    return Assign(key, out, [&](const json& v) { return loader_.ReadString(v, PathOf(key)); });
  }
  bool Int(std::string_view key, int* out, int min, int max) {
    return Assign(key, out, [&](const json& v) { return loader_.ReadInt(v, PathOf(key), min, max); });
  }
  bool Seconds(std::string_view key, seconds* out, seconds min, seconds max, std::string_view whose_limit) {
    return Assign(key, out,
                  [&](const json& v) { return loader_.ReadSeconds(v, PathOf(key), min, max, whose_limit); });
  }
  bool Enum(std::string_view key, std::string* out, const std::vector<std::string_view>& allowed) {
    return Assign(key, out, [&](const json& v) { return loader_.ReadEnum(v, PathOf(key), allowed); });
  }
  bool Url(std::string_view key, std::string* out, bool secret) {
    return Assign(key, out, [&](const json& v) { return loader_.ReadUrl(v, PathOf(key), secret); });
  }

 private:
  template <typename T, typename Read>
  bool Assign(std::string_view key, T* out, Read read) {
    const json* value = Get(key);
    if (value == nullptr) return false;
    std::optional<T> result = read(*value);
    if (!result) return false;
    *out = std::move(*result);
    return true;
  }

  Loader& loader_;
  std::string path_;
  std::vector<std::string_view> keys_;
  const json* object_ = nullptr;
};

// ----- ${VAR} expansion

std::optional<std::string> Loader::Lookup(std::string_view name, const std::string& path, bool* ok) {
  std::optional<std::string> value;
  try {
    if (options_.getenv) {
      value = options_.getenv(name);
    } else if (const char* raw = std::getenv(std::string(name).c_str())) {
      value = std::string(raw);
    }
  } catch (const std::exception& e) {
    Problem(path, "cannot read environment variable " + std::string(name) + ": " + e.what());
    *ok = false;
    return std::nullopt;
  }
  if (value && !IsValidUtf8(*value)) {
    Problem(path, "environment variable " + std::string(name) + " is not valid UTF-8");
    *ok = false;
    return std::nullopt;
  }
  if (value && LooksLikeSecretName(name)) env_secrets_.push_back(*value);
  return value;
}

// Expands text from *pos into *out. With `nested` (a default's text) it stops at the '}' that
// closes it, leaving *pos there; otherwise it runs to the end. With `evaluate` false it checks
// the syntax only: the default of a set variable is never expanded, as in the shell. Returns
// false if it reported a problem; sets *syntax_error when that problem makes the rest of the
// text meaningless (the caller then stops).
bool Loader::ExpandRange(std::string_view text, size_t* pos, bool nested, bool evaluate,
                         const std::string& path, std::string* out, bool* syntax_error) {
  bool ok = true;
  const auto syntax_problem = [&](std::string message) {
    Problem(path, std::move(message) + " in " + QuoteText(text) +
                      " (write ${VAR} or ${VAR:-default}, and $$ for a literal $)");
    *syntax_error = true;
    return false;
  };
  while (*pos < text.size()) {
    const char c = text[*pos];
    if (nested && c == '}') return ok;
    if (c != '$' || *pos + 1 >= text.size() || (text[*pos + 1] != '$' && text[*pos + 1] != '{')) {
      out->push_back(c);
      ++*pos;
      continue;
    }
    if (text[*pos + 1] == '$') {
      out->push_back('$');
      *pos += 2;
      continue;
    }
    // "${"
    *pos += 2;
    const size_t name_start = *pos;
    while (*pos < text.size() &&
           (std::isalnum(static_cast<unsigned char>(text[*pos])) || text[*pos] == '_')) {
      ++*pos;
    }
    const std::string_view name = text.substr(name_start, *pos - name_start);
    if (*pos >= text.size()) return syntax_problem("\"${\" without a closing \"}\"");
    if (!IsEnvName(name)) {
      return syntax_problem(name.empty() ? "missing variable name after \"${\""
                                         : "invalid variable name \"" + std::string(name) + "\"");
    }
    if (text[*pos] == '}') {
      ++*pos;
      if (!evaluate) continue;
      bool lookup_ok = true;
      std::optional<std::string> value = Lookup(name, path, &lookup_ok);
      if (value) {
        out->append(*value);
      } else if (lookup_ok) {
        Problem(path, "environment variable " + std::string(name) + " is not set (use ${" +
                          std::string(name) + ":-default} to give a default)");
        ok = false;
      } else {
        ok = false;
      }
      continue;
    }
    if (text.substr(*pos, 2) != ":-") {
      return syntax_problem("unsupported \"${" + std::string(name) + text[*pos] + "\"");
    }
    *pos += 2;
    std::optional<std::string> value;
    bool lookup_ok = true;
    if (evaluate) value = Lookup(name, path, &lookup_ok);
    const bool use_default = evaluate && lookup_ok && (!value || value->empty());
    std::string default_text;
    if (!ExpandRange(text, pos, /*nested=*/true, use_default, path, &default_text, syntax_error)) ok = false;
    if (*syntax_error) return false;
    if (*pos >= text.size()) return syntax_problem("\"${\" without a closing \"}\"");
    ++*pos;  // the closing '}'
    if (!lookup_ok) ok = false;
    out->append(use_default ? default_text : value.value_or(""));
  }
  return ok;
}

std::optional<std::string> Loader::Expand(std::string_view text, const std::string& path) {
  if (text.find('$') == std::string_view::npos) return std::string(text);
  std::string out;
  size_t pos = 0;
  bool syntax_error = false;
  if (!ExpandRange(text, &pos, /*nested=*/false, /*evaluate=*/true, path, &out, &syntax_error))
    return std::nullopt;
  return out;
}

bool Loader::ExpandTree(json* value, const std::string& path) {
  if (value->is_string()) {
    std::optional<std::string> expanded = Expand(value->get_ref<const std::string&>(), path);
    if (!expanded) return false;
    *value = std::move(*expanded);
    return true;
  }
  bool ok = true;
  if (value->is_object()) {
    for (auto& [key, item] : value->items()) ok = ExpandTree(&item, JsonPathKey(path, key)) && ok;
  } else if (value->is_array()) {
    for (size_t i = 0; i < value->size(); ++i) ok = ExpandTree(&(*value)[i], JsonPathIndex(path, i)) && ok;
  }
  return ok;
}

// ----- typed reads

std::optional<std::string> Loader::ReadString(const json& value, const std::string& path) {
  if (!value.is_string()) {
    Problem(path, "expected a string, got " + DescribeJsonValue(value));
    return std::nullopt;
  }
  return Expand(value.get_ref<const std::string&>(), path);
}

std::optional<int> Loader::ReadInt(const json& value, const std::string& path, int min, int max) {
  if (!value.is_number_integer()) {
    Problem(path, "expected an integer, got " + DescribeJsonValue(value));
    return std::nullopt;
  }
  // Non-negative numbers parse as unsigned, and may not fit in int64_t.
  bool in_range;
  if (value.is_number_unsigned()) {
    const uint64_t number = value.get<uint64_t>();
    in_range = (min <= 0 || number >= static_cast<uint64_t>(min)) && number <= static_cast<uint64_t>(max);
  } else {
    in_range = value.get<int64_t>() >= min && value.get<int64_t>() <= max;
  }
  if (!in_range) {
    Problem(path,
            (max == INT_MAX ? "must be at least " + std::to_string(min)
                            : "must be between " + std::to_string(min) + " and " + std::to_string(max)) +
                ", got " + value.dump());
    return std::nullopt;
  }
  return static_cast<int>(value.get<int64_t>());
}

std::optional<seconds> Loader::ReadSeconds(const json& value, const std::string& path, seconds min,
                                           seconds max, std::string_view whose_limit) {
  if (value.is_number()) {
    std::string message = "expected a duration like ";
    if (value.is_number_unsigned()) {
      message += "\"" + value.dump() + "s\" (a number needs a unit: ms, s, m, h or d)";
    } else {
      message += "\"30s\"";
    }
    Problem(path, message + ", got " + value.dump());
    return std::nullopt;
  }
  std::optional<std::string> text = ReadString(value, path);
  if (!text) return std::nullopt;
  StatusOr<std::chrono::milliseconds> parsed = ParseDuration(*text);
  if (!parsed.ok()) {
    Problem(path, parsed.status().message());
    return std::nullopt;
  }
  if (parsed->count() % 1000 != 0) {
    Problem(path, "must be a whole number of seconds, got " + QuoteText(*text));
    return std::nullopt;
  }
  const seconds result = std::chrono::duration_cast<seconds>(*parsed);
  const std::string limit_owner = whose_limit.empty() ? "the" : std::string(whose_limit);
  if (result > max) {
    Problem(path, FormatDuration(result) + " is over " + limit_owner + " maximum of " + FormatDuration(max));
    return std::nullopt;
  }
  if (result < min) {
    Problem(path, FormatDuration(result) + " is under " + limit_owner + " minimum of " + FormatDuration(min));
    return std::nullopt;
  }
  return result;
}

std::optional<std::string> Loader::ReadEnum(const json& value, const std::string& path,
                                            const std::vector<std::string_view>& allowed) {
  std::optional<std::string> text = ReadString(value, path);
  if (!text) return std::nullopt;
  if (std::find(allowed.begin(), allowed.end(), *text) != allowed.end()) return text;
  std::string message = "expected " + QuotedAlternatives(allowed) + ", got " + QuoteText(*text);
  if (std::optional<std::string> suggestion = ClosestName(*text, allowed)) {
    message += " (did you mean \"" + *suggestion + "\"?)";
  }
  Problem(path, std::move(message));
  return std::nullopt;
}

std::optional<std::string> Loader::ReadUrl(const json& value, const std::string& path, bool secret) {
  std::optional<std::string> text = ReadString(value, path);
  if (!text) return std::nullopt;
  if (IsHttpUrl(*text)) return text;
  // Webhook URLs are credentials: never echo them, not even in an error.
  Problem(path, "expected an http:// or https:// URL" +
                    (secret ? std::string(" (the value is not shown: it is a secret)")
                            : ", got " + QuoteText(*text)));
  return std::nullopt;
}

std::optional<std::vector<std::string>> Loader::ReadStringArray(const json& value, const std::string& path) {
  if (!value.is_array()) {
    Problem(path, "expected an array of strings, got " + DescribeJsonValue(value));
    return std::nullopt;
  }
  std::vector<std::string> out;
  bool ok = true;
  for (size_t i = 0; i < value.size(); ++i) {
    std::optional<std::string> item = ReadString(value[i], JsonPathIndex(path, i));
    if (item) {
      out.push_back(std::move(*item));
    } else {
      ok = false;
    }
  }
  if (!ok) return std::nullopt;
  return out;
}

std::optional<std::map<std::string, std::string>> Loader::ReadStringMap(
    const json& value, const std::string& path,
    const std::function<std::optional<std::string>(const std::string& key)>& check_key,
    const std::function<std::optional<std::string>(const std::string& value)>& check_value) {
  if (!value.is_object()) {
    Problem(path, "expected an object of strings, got " + DescribeJsonValue(value));
    return std::nullopt;
  }
  std::map<std::string, std::string> out;
  bool ok = true;
  for (const auto& [key, item] : value.items()) {
    const std::string item_path = JsonPathKey(path, key);
    if (std::optional<std::string> problem = check_key(key)) {
      Problem(item_path, std::move(*problem));
      ok = false;
      continue;
    }
    std::optional<std::string> text = ReadString(item, item_path);
    if (!text) {
      ok = false;
      continue;
    }
    if (std::optional<std::string> problem = check_value(*text)) {
      Problem(item_path, std::move(*problem));
      ok = false;
      continue;
    }
    out.emplace(key, std::move(*text));
  }
  if (!ok) return std::nullopt;
  return out;
}

// ----- sections

void Loader::Load(std::string_view text, Config* config) {
  config->source_path = source_path_;
  std::vector<JsonTextProblem> json_problems;
  std::optional<json> root = ParseJsonText(text, &json_problems);
  for (JsonTextProblem& problem : json_problems) {
    problems_.push_back({std::move(problem.path), std::move(problem.message), problem.line, problem.column});
  }
  if (!root) return;
  if (!root->is_object()) {
    Problem("", "expected a JSON object at the top level, got " + DescribeJsonValue(*root));
    return;
  }
  ObjectReader reader(*this, *root, "", {"queue", "consumer", "notify", "metrics", "jobs"});
  if (const json* queue = reader.Get("queue")) LoadQueue(*queue, &config->queue);
  if (const json* consumer = reader.Get("consumer")) LoadConsumer(*consumer, &config->consumer);
  if (const json* notify = reader.Get("notify")) LoadNotify(*notify, &config->notify);
  if (const json* metrics = reader.Get("metrics")) LoadMetrics(*metrics, &config->metrics);
  if (const json* jobs = reader.Get("jobs")) LoadJobs(*jobs, &config->jobs);

  // Cross-field: consumer.default_job names a job.
  const std::string& default_job = config->consumer.default_job;
  if (!default_job.empty()) {
    std::vector<std::string> job_names;
    for (const JobConfig& job : config->jobs) {
      if (std::find(job_names.begin(), job_names.end(), job.name) == job_names.end())
        job_names.push_back(job.name);
    }
    if (std::find(job_names.begin(), job_names.end(), default_job) == job_names.end()) {
      Problem("consumer.default_job",
              UnknownNameMessage("job", default_job, job_names, "no jobs are defined"));
    }
  }
  CollectSecrets(config);
}

void Loader::LoadQueue(const json& value, QueueConfig* queue) {
  ObjectReader r(*this, value, "queue",
                 {"backend", "url", "name", "region", "endpoint", "protocol", "visibility_timeout",
                  "wait_time", "retention", "max_receive_count"});
  if (!r.ok()) return;
  r.Enum("backend", &queue->backend, {"memory", "sqs"});
  r.Url("url", &queue->url, /*secret=*/false);
  if (r.String("name", &queue->name) && !IsValidQueueName(queue->name)) {
    Problem(r.PathOf("name"),
            "expected an SQS queue name (1 to 80 characters from A-Z a-z 0-9 _ -, "
            "ending in \".fifo\" for a FIFO queue), got " +
                QuoteText(queue->name));
  }
  r.String("region", &queue->region);
  r.Url("endpoint", &queue->endpoint, /*secret=*/false);
  r.Enum("protocol", &queue->protocol, {"json", "query"});
  r.Seconds("visibility_timeout", &queue->visibility_timeout, seconds(0), kMaxVisibilityTimeout, "SQS's");
  r.Seconds("wait_time", &queue->wait_time, seconds(0), kMaxWaitTime, "SQS's");
  r.Seconds("retention", &queue->retention, kMinRetention, kMaxRetention, "SQS's");
  r.Int("max_receive_count", &queue->max_receive_count, 0, INT_MAX);

  if (r.Has("url") && r.Has("name")) {
    Problem(r.PathOf("name"), "\"url\" and \"name\" are mutually exclusive: give one");
  } else if (queue->backend == "sqs" && !r.Has("url") && !r.Has("name")) {
    Problem("queue", "backend \"sqs\" needs \"url\" (the queue URL) or \"name\" (the queue name)");
  }
}

void Loader::LoadConsumer(const json& value, ConsumerConfig* consumer) {
  ObjectReader r(*this, value, "consumer",
                 {"workers", "batch_size", "pollers", "shutdown_grace", "retry", "default_job"});
  if (!r.ok()) return;
  r.Int("workers", &consumer->workers, 1, kMaxWorkers);
  r.Int("batch_size", &consumer->batch_size, 1, kMaxBatchSize);
  r.Int("pollers", &consumer->pollers, 1, kMaxPollers);
  r.Seconds("shutdown_grace", &consumer->shutdown_grace, seconds(0), seconds::max(), "");
  if (const json* retry = r.Get("retry")) {
    ObjectReader rr(*this, *retry, r.PathOf("retry"), {"base", "max"});
    // Back-off is a visibility timeout, so SQS's maximum applies.
    const bool base_ok =
        rr.Seconds("base", &consumer->retry.base, seconds(0), kMaxVisibilityTimeout, "SQS's");
    const bool max_ok = rr.Seconds("max", &consumer->retry.max, seconds(0), kMaxVisibilityTimeout, "SQS's");
    // Compare only values that were read (or defaulted), never a rejected one.
    if ((base_ok || max_ok) && (base_ok || !rr.Has("base")) && (max_ok || !rr.Has("max")) &&
        consumer->retry.max < consumer->retry.base) {
      Problem(rr.PathOf("max"), FormatDuration(consumer->retry.max) + " is less than retry.base (" +
                                    FormatDuration(consumer->retry.base) + ")");
    }
  }
  r.String("default_job", &consumer->default_job);
}

void Loader::LoadMetrics(const json& value, MetricsConfig* metrics) {
  ObjectReader r(*this, value, "metrics", {"port", "address", "unhealthy_after"});
  if (!r.ok()) return;
  r.Int("port", &metrics->port, 0, 65535);
  if (r.String("address", &metrics->address) && !IsIpLiteral(metrics->address)) {
    Problem(r.PathOf("address"), "expected an IP address such as \"127.0.0.1\" (this host only), \"0.0.0.0\" or "
                                 "\"::\" (every interface), got " + QuoteText(metrics->address));
  }
  r.Seconds("unhealthy_after", &metrics->unhealthy_after, seconds(1), seconds(24 * 3600), "");
}

void Loader::LoadNotify(const json& value, NotifyConfig* notify) {
  ObjectReader r(*this, value, "notify", {"targets", "flush_timeout"});
  r.Seconds("flush_timeout", &notify->flush_timeout, seconds(0), seconds(3600), "");
  const json* targets = r.Get("targets");
  if (targets == nullptr) return;
  const std::string targets_path = r.PathOf("targets");
  if (!targets->is_object()) {
    Problem(targets_path, "expected an object of named targets, got " + DescribeJsonValue(*targets));
    return;
  }
  for (const auto& [name, target_value] : targets->items()) {
    const std::string path = JsonPathKey(targets_path, name);
    target_names_.push_back(name);
    if (!IsValidName(name)) {
      Problem(path, "a target name must be " + std::string(kNameRule) + ", got " + QuoteText(name));
    }
    ObjectReader t(*this, target_value, path,
                   {"type", "url", "title", "body", "mention_on_failure", "username", "outbox"});
    if (!t.ok()) continue;
    const std::size_t problems_before = problems_.size();
    NotifyTargetConfig target;
    t.Require("type");
    const bool type_ok = t.Enum("type", &target.type, {"slack", "discord"});
    t.Require("url");
    t.Url("url", &target.url, /*secret=*/true);
    t.String("title", &target.title);
    t.String("body", &target.body);
    if (const json* mentions = t.Get("mention_on_failure")) {
      if (std::optional<std::vector<std::string>> ids = ReadStringArray(*mentions, t.PathOf("mention_on_failure"))) {
        target.mention_on_failure = std::move(*ids);
      }
    }
    t.String("username", &target.username);
    if (type_ok && target.type != "discord" && t.Has("username")) {
      Problem(t.PathOf("username"), "only Discord webhooks take a username");
    }
    t.Int("outbox", &target.outbox, 1, 1'000'000);
    if (problems_.size() == problems_before && options_.validate_notify_target) {
      for (auto& [key, message] : options_.validate_notify_target(target)) {
        Problem(path + "." + key, std::move(message));  // keys like "mention_on_failure[0]", as written
      }
    }
    notify->targets[name] = std::move(target);
  }
}

void Loader::LoadJobs(const json& value, std::vector<JobConfig>* jobs) {
  if (!value.is_array()) {
    Problem("jobs", "expected an array of jobs, got " + DescribeJsonValue(value));
    return;
  }
  std::map<std::string, std::string> first_path_of_name;
  for (size_t i = 0; i < value.size(); ++i) {
    const std::string path = JsonPathIndex("jobs", i);
    JobConfig job;
    LoadJob(value[i], path, &job);
    if (!job.name.empty()) {
      const auto [it, inserted] = first_path_of_name.emplace(job.name, path + ".name");
      if (!inserted) {
        Problem(path + ".name",
                "duplicate job name " + QuoteText(job.name) + " (also at " + it->second + ")");
      }
    }
    jobs->push_back(std::move(job));
  }
}

void Loader::LoadJob(const json& value, const std::string& path, JobConfig* job) {
  ObjectReader r(*this, value, path,
                 {"name", "schedule", "timezone", "tasks", "tasks_file", "handler", "notify", "catch_up",
                  "message_group_id"});
  if (!r.ok()) return;
  r.Require("name");
  if (r.String("name", &job->name) && !IsValidName(job->name)) {
    Problem(r.PathOf("name"),
            "a job name must be " + std::string(kNameRule) + ", got " + QuoteText(job->name));
  }
  const bool schedule_ok = !r.Has("schedule") || r.String("schedule", &job->schedule);
  bool timezone_ok = true;
  if (r.Has("timezone")) {
    timezone_ok = r.String("timezone", &job->timezone);
    if (timezone_ok && job->timezone.empty()) {
      Problem(r.PathOf("timezone"),
              "expected an IANA time zone such as \"UTC\" or \"Asia/Taipei\", got \"\"");
      timezone_ok = false;
    }
  }

  if (r.Has("tasks") && r.Has("tasks_file")) {
    Problem(r.PathOf("tasks_file"), "\"tasks\" and \"tasks_file\" are mutually exclusive: give one");
  } else if (const json* tasks = r.Get("tasks")) {
    LoadTasks(*tasks, r.PathOf("tasks"), &job->tasks);
  } else if (r.Has("tasks_file")) {
    std::string file;
    if (r.String("tasks_file", &file)) LoadTasksFile(file, r.PathOf("tasks_file"), job);
  } else {
    job->tasks.push_back(json::object());  // no tasks: the job sends one empty task
  }

  if (const json* handler = r.Get("handler")) LoadHandler(*handler, r.PathOf("handler"), &job->handler);
  if (const json* notify = r.Get("notify")) LoadJobNotify(*notify, r.PathOf("notify"), &job->notify);
  if (const json* catch_up = r.Get("catch_up")) {
    if (catch_up->is_boolean()) {
      job->catch_up = catch_up->get<bool>();
    } else {
      Problem(r.PathOf("catch_up"), "expected true or false, got " + DescribeJsonValue(*catch_up));
    }
  }
  if (r.String("message_group_id", &job->message_group_id) &&
      !IsValidMessageGroupId(job->message_group_id)) {
    Problem(r.PathOf("message_group_id"),
            "a message group id must be 1 to 128 printable ASCII characters without spaces (as SQS "
            "allows), got " + QuoteText(job->message_group_id));
  }

  if (schedule_ok && timezone_ok && !job->schedule.empty()) CheckSchedule(r.PathOf("schedule"), *job);
}

void Loader::LoadTasks(const json& value, const std::string& path, std::vector<json>* tasks) {
  if (!value.is_array()) {
    Problem(path, "expected an array of tasks (strings or objects), got " + DescribeJsonValue(value));
    return;
  }
  if (value.empty()) {
    Problem(path,
            "the list is empty: the job would send nothing (leave \"tasks\" out to send one empty task {})");
    return;
  }
  for (size_t i = 0; i < value.size(); ++i) {
    const std::string item_path = JsonPathIndex(path, i);
    if (!value[i].is_string() && !value[i].is_object()) {
      Problem(item_path, "a task must be a string or an object, got " + DescribeJsonValue(value[i]));
      continue;
    }
    json task = value[i];
    if (ExpandTree(&task, item_path)) tasks->push_back(std::move(task));
  }
}

void Loader::LoadTasksFile(const std::string& file, const std::string& path, JobConfig* job) {
  if (file.empty()) {
    Problem(path, "expected a file name, got \"\"");
    return;
  }
  std::filesystem::path resolved(file);
  if (resolved.is_relative() && !source_path_.empty()) {
    resolved = std::filesystem::path(source_path_).parent_path() / resolved;
  }
  job->tasks_file = resolved.lexically_normal().string();

  StatusOr<std::string> text = InternalError("not read");
  try {
    text = options_.read_file ? options_.read_file(job->tasks_file)
                              : ReadTextFile(job->tasks_file, "tasks file");
  } catch (const std::exception& e) {
    text = InvalidArgumentError("cannot read tasks file " + QuoteText(job->tasks_file) + ": " + e.what());
  }
  StatusOr<std::vector<json>> tasks = text.ok() ? ParseTasksText(*text, job->tasks_file) : text.status();
  if (!tasks.ok()) {
    // One problem per line of the message: a tasks file reports each bad line.
    const std::string& message = tasks.status().message();
    size_t start = 0;
    while (start < message.size()) {
      size_t end = message.find('\n', start);
      if (end == std::string::npos) end = message.size();
      Problem(path, message.substr(start, end - start));
      start = end + 1;
    }
    return;
  }
  if (tasks->empty()) {
    Problem(path, QuoteText(job->tasks_file) + " holds no tasks: the job would send nothing");
    return;
  }
  job->tasks = std::move(*tasks);
}

void Loader::LoadHandler(const json& value, const std::string& path, HandlerConfig* handler) {
  static const std::vector<std::string_view> kExecKeys = {"command", "cwd", "env"};
  static const std::vector<std::string_view> kHttpKeys = {"url", "method", "headers"};
  ObjectReader r(*this, value, path,
                 {"type", "command", "cwd", "env", "url", "method", "headers", "timeout", "options"});
  if (!r.ok()) return;

  bool type_ok = true;
  if (r.Has("type")) {
    std::string type;
    type_ok = r.String("type", &type);
    if (type_ok && options_.handler_types.count(type) == 0) {
      Problem(r.PathOf("type"), UnknownNameMessage("handler type", type, options_.handler_types,
                                                   "no handler types are registered"));
      type_ok = false;
    }
    if (type_ok) handler->type = type;
  }
  const std::string& type = handler->type;
  const bool is_exec = type == "exec";
  const bool is_http = type == "http";
  const bool is_builtin = is_exec || is_http || type == "log";
  // With a built-in type, keys that belong to another type are mistakes, reported and not read.
  // Handlers registered from C++ (and a type that is itself wrong) may use any of them.
  const auto used = [&](std::string_view key) {
    if (!type_ok || !is_builtin || key == "type" || key == "timeout") return true;
    return (is_exec && std::find(kExecKeys.begin(), kExecKeys.end(), key) != kExecKeys.end()) ||
           (is_http && std::find(kHttpKeys.begin(), kHttpKeys.end(), key) != kHttpKeys.end());
  };
  for (std::string_view key : {"command", "cwd", "env", "url", "method", "headers", "options"}) {
    if (!used(key) && r.Has(key)) Problem(r.PathOf(key), "not used by handler type \"" + type + "\"");
  }

  const auto no_nul = [](const std::string& text) -> std::optional<std::string> {
    if (text.find('\0') != std::string::npos) return "must not contain NUL characters";
    return std::nullopt;
  };

  if (is_exec) r.Require("command");
  if (const json* command = used("command") ? r.Get("command") : nullptr) {
    const std::string command_path = r.PathOf("command");
    if (std::optional<std::vector<std::string>> argv = ReadStringArray(*command, command_path)) {
      if (argv->empty()) {
        Problem(command_path, "expected the program and its arguments, got an empty array");
      } else if ((*argv)[0].empty()) {
        Problem(JsonPathIndex(command_path, 0), "the program name is empty");
      } else {
        bool ok = true;
        for (size_t i = 0; i < argv->size(); ++i) {
          if (std::optional<std::string> problem = no_nul((*argv)[i])) {
            Problem(JsonPathIndex(command_path, i), std::move(*problem));
            ok = false;
          }
        }
        if (ok) handler->command = std::move(*argv);
      }
    }
  }
  if (used("cwd") && r.String("cwd", &handler->cwd)) {
    if (std::optional<std::string> problem = no_nul(handler->cwd))
      Problem(r.PathOf("cwd"), std::move(*problem));
  }
  if (const json* env = used("env") ? r.Get("env") : nullptr) {
    auto vars = ReadStringMap(
        *env, r.PathOf("env"),
        [](const std::string& key) -> std::optional<std::string> {
          if (IsEnvName(key)) return std::nullopt;
          return "expected a variable name (letters, digits and _, not starting with a digit)";
        },
        no_nul);
    if (vars) handler->env = std::move(*vars);
  }

  if (is_http) r.Require("url");
  if (used("url")) r.Url("url", &handler->url, /*secret=*/false);
  if (used("method")) r.Enum("method", &handler->method, {"GET", "POST", "PUT", "PATCH", "DELETE"});
  if (const json* headers = used("headers") ? r.Get("headers") : nullptr) {
    auto map = ReadStringMap(
        *headers, r.PathOf("headers"),
        [](const std::string& key) -> std::optional<std::string> {
          if (IsHeaderName(key)) return std::nullopt;
          return "not a valid HTTP header name";
        },
        [](const std::string& text) -> std::optional<std::string> {
          // Header values may be secrets (bearer tokens): do not echo them.
          if (text.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
            return "must not contain line breaks or NUL characters";
          }
          return std::nullopt;
        });
    if (map) handler->headers = std::move(*map);
  }
  r.Seconds("timeout", &handler->timeout, seconds(1), seconds::max(), "");
  if (const json* options = used("options") ? r.Get("options") : nullptr) {
    if (!options->is_object()) {
      Problem(r.PathOf("options"), "expected an object, got " + DescribeJsonValue(*options));
    } else {
      json expanded = *options;
      if (ExpandTree(&expanded, r.PathOf("options"))) handler->options = std::move(expanded);
    }
  }
}

void Loader::LoadJobNotify(const json& value, const std::string& path, JobNotifyConfig* notify) {
  ObjectReader r(*this, value, path, {"targets", "on"});
  if (!r.ok()) return;
  if (const json* targets = r.Get("targets")) {
    const std::string targets_path = r.PathOf("targets");
    if (std::optional<std::vector<std::string>> names = ReadStringArray(*targets, targets_path)) {
      for (size_t i = 0; i < names->size(); ++i) {
        const std::string& name = (*names)[i];
        if (std::find(target_names_.begin(), target_names_.end(), name) == target_names_.end()) {
          Problem(JsonPathIndex(targets_path, i),
                  UnknownNameMessage("notify target", name, target_names_,
                                     "no targets are defined in notify.targets"));
        }
      }
      notify->targets = std::move(*names);
    }
  }
  r.Enum("on", &notify->on, {"success", "failure", "always", "recovered"});
}

void Loader::CheckSchedule(const std::string& path, const JobConfig& job) {
  if (!options_.validate_schedule) return;
  std::optional<std::string> problem;
  try {
    problem = options_.validate_schedule(job);
  } catch (const std::exception& e) {
    problem = std::string("cannot check the schedule: ") + e.what();
  } catch (...) {
    problem = "cannot check the schedule";
  }
  if (problem) Problem(path, std::move(*problem));
}

void Loader::CollectSecrets(Config* config) {
  std::vector<std::string>& secrets = config->secrets;
  const auto add = [&](const std::string& secret) {
    if (secret.size() < kMinSecretLength) return;
    if (std::find(secrets.begin(), secrets.end(), secret) == secrets.end()) secrets.push_back(secret);
  };
  for (const auto& [name, target] : config->notify.targets) add(target.url);
  for (const JobConfig& job : config->jobs) {
    for (const auto& [name, value] : job.handler.headers) add(value);
    for (const auto& [name, value] : job.handler.env) add(value);
  }
  for (const std::string& value : env_secrets_) add(value);
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::string ConfigProblem::ToString() const {
  if (line > 0) return "line " + std::to_string(line) + ", column " + std::to_string(column) + ": " + message;
  if (path.empty()) return message;
  return path + ": " + message;
}

std::vector<ConfigProblem> ParseConfigProblems(std::string_view text, const LoadOptions& options,
                                               const std::string& source_path, Config* config) {
  Loader loader(options, source_path);
  try {
    loader.Load(text, config);
  } catch (const std::exception& e) {
    // Not expected: typed access checks types first. Still, no exception leaves the loader.
    loader.Problem("", std::string("internal error while loading the config: ") + e.what());
  }
  return loader.TakeProblems();
}

std::vector<ConfigProblem> LoadConfigFileProblems(const std::string& path, const LoadOptions& options,
                                                  Config* config) {
  StatusOr<std::string> text = ReadTextFile(path, "config");
  if (!text.ok()) return {{"", text.status().message(), 0, 0}};
  return ParseConfigProblems(*text, options, path, config);
}

Status ConfigProblemsToStatus(const std::vector<ConfigProblem>& problems, const std::string& source_path) {
  if (problems.empty()) return Status::Ok();
  std::string message = "invalid config";
  if (!source_path.empty()) message += " " + QuoteText(source_path);
  message += " (" + std::to_string(problems.size()) + (problems.size() == 1 ? " problem):" : " problems):");
  for (const ConfigProblem& problem : problems) message += "\n" + problem.ToString();
  return InvalidArgumentError(std::move(message));
}

StatusOr<Config> ParseConfig(std::string_view text, const LoadOptions& options, std::string source_path) {
  Config config;
  std::vector<ConfigProblem> problems = ParseConfigProblems(text, options, source_path, &config);
  if (!problems.empty()) return ConfigProblemsToStatus(problems, source_path);
  return config;
}

StatusOr<Config> LoadConfigFile(const std::string& path, const LoadOptions& options) {
  StatusOr<std::string> text = ReadTextFile(path, "config");
  if (!text.ok()) return text.status();
  return ParseConfig(*text, options, path);
}

}  // namespace taskpipe
