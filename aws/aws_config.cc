#include "aws/aws_config.h"

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "common/quote.h"

namespace taskpipe {
namespace {

constexpr std::size_t kMaxSharedFileBytes = std::size_t{1} << 20;

bool IsBlank(char c) { return c == ' ' || c == '\t'; }

std::string_view Trim(std::string_view text) {
  std::size_t begin = 0;
  std::size_t end = text.size();
  while (begin < end && std::isspace(static_cast<unsigned char>(text[begin]))) ++begin;
  while (end > begin && std::isspace(static_cast<unsigned char>(text[end - 1]))) --end;
  return text.substr(begin, end - begin);
}

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Cuts an inline comment: '#' or ';' preceded by white space (so that a value such as "a#b" keeps
// its '#', as the SDKs' profile parsers do).
std::string_view StripInlineComment(std::string_view text) {
  for (std::size_t i = 1; i < text.size(); ++i) {
    if ((text[i] == '#' || text[i] == ';') && IsBlank(text[i - 1])) return text.substr(0, i);
  }
  return text;
}

// The value of a variable, with "" treated as unset (the SDKs do the same).
std::optional<std::string> NonEmptyEnv(const GetenvFunction& getenv, const std::string& name) {
  std::optional<std::string> value = getenv ? getenv(name) : SystemGetenv(name);
  if (value && value->empty()) return std::nullopt;
  return value;
}

std::string HomeOf(const AwsEnvironment& env) {
  if (!env.home.empty()) return env.home;
  return NonEmptyEnv(env.getenv, "HOME").value_or("");
}

// The path named by variable `var`, with a leading "~/" expanded; else `default_name` under
// ~/.aws; "" when neither can be formed (no home).
std::string SharedFilePath(const AwsEnvironment& env, const std::string& var, const char* default_name) {
  const std::string home = HomeOf(env);
  if (std::optional<std::string> path = NonEmptyEnv(env.getenv, var)) {
    if (path->size() >= 2 && (*path)[0] == '~' && (*path)[1] == '/' && !home.empty()) {
      return home + path->substr(1);
    }
    return *path;
  }
  if (home.empty()) return "";
  return home + "/.aws/" + default_name;
}

// Reads and parses one shared file. nullopt when it does not exist.
StatusOr<std::optional<AwsIniSections>> ReadSharedFile(const AwsEnvironment& env, const std::string& path) {
  if (path.empty()) return std::optional<AwsIniSections>();
  StatusOr<std::string> text = env.read_file ? env.read_file(path) : ReadLocalFile(path);
  if (!text.ok()) {
    if (text.status().code() == StatusCode::kNotFound) return std::optional<AwsIniSections>();
    return text.status();
  }
  StatusOr<AwsIniSections> sections = ParseAwsIni(*text, path);
  if (!sections.ok()) return sections.status();
  return std::optional<AwsIniSections>(std::move(sections).value());
}

std::optional<std::map<std::string, std::string>> FindSection(const AwsIniSections& sections,
                                                              const std::string& name) {
  auto it = sections.find(name);
  if (it == sections.end()) return std::nullopt;
  return it->second;
}

// The profile's section in the config file: "[profile NAME]"; for "default" also "[default]"
// ("[profile default]" wins when both exist, as in the CLI). Any white space may separate
// "profile" from the name.
std::optional<std::map<std::string, std::string>> FindConfigProfile(const AwsIniSections& sections,
                                                                    const std::string& name) {
  std::optional<std::map<std::string, std::string>> plain_default;
  for (const auto& [section, settings] : sections) {
    std::string_view s = section;
    if (s.size() > 7 && s.substr(0, 7) == "profile" && IsBlank(s[7]) && Trim(s.substr(7)) == name) {
      return settings;
    }
    if (name == "default" && s == "default") plain_default = settings;
  }
  return plain_default;
}

bool IsValidRegion(std::string_view region) {
  if (region.empty() || region.size() > 63) return false;
  for (char c : region) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.') return false;
  }
  return region.front() != '-' && region.front() != '.' && region.back() != '-' && region.back() != '.';
}

}  // namespace

std::optional<std::string> SystemGetenv(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

StatusOr<std::string> ReadLocalFile(const std::string& path) {
  errno = 0;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) {
    const int error = errno;
    std::string message = "cannot read " + QuoteForError(path) + ": " + std::strerror(error);
    if (error == ENOENT || error == ENOTDIR) return NotFoundError(std::move(message));
    if (error == EACCES || error == EPERM) return PermissionDeniedError(std::move(message));
    return InvalidArgumentError(std::move(message));
  }
  std::string content;
  char buffer[16 * 1024];
  while (true) {
    const std::size_t n = std::fread(buffer, 1, sizeof buffer, file.get());
    content.append(buffer, n);
    if (content.size() > kMaxSharedFileBytes) {
      return InvalidArgumentError("cannot read " + QuoteForError(path) + ": larger than 1 MiB");
    }
    if (n < sizeof buffer) {
      // A directory opens fine on Linux and fails here with EISDIR.
      if (std::ferror(file.get())) {
        return InvalidArgumentError("cannot read " + QuoteForError(path) + ": " + std::strerror(errno));
      }
      break;
    }
  }
  return content;
}

StatusOr<AwsIniSections> ParseAwsIni(std::string_view text, std::string_view path) {
  AwsIniSections sections;
  std::map<std::string, std::string>* section = nullptr;
  std::string last_key;         // the property an indented line continues; "" when there is none
  bool last_is_parent = false;  // `last_key` had an empty value: indented lines are sub-properties
  int line_number = 0;
  // Messages name the file and line, never the line's text: it may hold a secret key.
  const auto malformed = [&](std::string_view what) {
    return InvalidArgumentError(QuoteForError(path) + " line " + std::to_string(line_number) + ": " +
                                std::string(what));
  };
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line_number == 1 && line.substr(0, 3) == "\xEF\xBB\xBF") line.remove_prefix(3);  // UTF-8 BOM

    const std::string_view trimmed = Trim(line);
    if (trimmed.empty() || trimmed.front() == '#' || trimmed.front() == ';') continue;

    if (trimmed.front() == '[') {
      const std::size_t close = trimmed.find(']');
      if (close == std::string_view::npos) return malformed("section header without a closing ']'");
      const std::string_view rest = Trim(trimmed.substr(close + 1));
      if (!rest.empty() && rest.front() != '#' && rest.front() != ';') {
        return malformed("unexpected text after the section header's ']'");
      }
      const std::string_view name = Trim(trimmed.substr(1, close - 1));
      if (name.empty()) return malformed("empty section name");
      section = &sections[std::string(name)];
      last_key.clear();
      continue;
    }

    if (IsBlank(line.front())) {  // an indented line continues the property above
      if (section == nullptr || last_key.empty()) {
        return malformed("indented line that does not continue a property");
      }
      const std::string_view continued = Trim(StripInlineComment(trimmed));
      if (last_is_parent) {
        const std::size_t eq = continued.find('=');
        if (eq == std::string_view::npos) return malformed("expected \"key = value\" in a sub-property");
        const std::string sub_key = Lower(Trim(continued.substr(0, eq)));
        if (sub_key.empty()) return malformed("empty key");
        (*section)[last_key + "." + sub_key] = std::string(Trim(continued.substr(eq + 1)));
      } else {
        std::string& value = (*section)[last_key];
        value += '\n';
        value += continued;
      }
      continue;
    }

    const std::size_t eq = trimmed.find('=');
    if (eq == std::string_view::npos)
      return malformed("expected \"[section]\", \"key = value\" or a comment");
    if (section == nullptr) return malformed("property before any [section]");
    const std::string key = Lower(Trim(trimmed.substr(0, eq)));
    if (key.empty()) return malformed("empty key");
    const std::string_view value = Trim(StripInlineComment(trimmed.substr(eq + 1)));
    (*section)[key] = std::string(value);
    last_key = key;
    last_is_parent = value.empty();
  }
  return sections;
}

std::optional<std::string> AwsProfile::Get(const std::string& key) const {
  if (in_credentials_file) {
    auto it = in_credentials_file->find(key);
    if (it != in_credentials_file->end()) return it->second;
  }
  if (in_config_file) {
    auto it = in_config_file->find(key);
    if (it != in_config_file->end()) return it->second;
  }
  return std::nullopt;
}

std::string AwsProfile::DescribeFiles() const {
  const auto describe = [](const std::string& path, bool exists, const char* what) {
    if (path.empty()) return std::string(what) + " file (no home folder: HOME is not set)";
    return QuoteForError(path) + (exists ? "" : " (not found)");
  };
  return describe(credentials_path, credentials_file_exists, "credentials") + ", " +
         describe(config_path, config_file_exists, "config");
}

StatusOr<AwsProfile> LoadAwsProfile(const AwsEnvironment& env) {
  AwsProfile profile;
  if (std::optional<std::string> name = NonEmptyEnv(env.getenv, "AWS_PROFILE")) {
    profile.name = *name;
    profile.name_from_env = true;
  } else {
    profile.name = "default";
  }
  profile.credentials_path = SharedFilePath(env, "AWS_SHARED_CREDENTIALS_FILE", "credentials");
  profile.config_path = SharedFilePath(env, "AWS_CONFIG_FILE", "config");

  StatusOr<std::optional<AwsIniSections>> credentials = ReadSharedFile(env, profile.credentials_path);
  if (!credentials.ok()) return credentials.status();
  if (credentials->has_value()) {
    profile.credentials_file_exists = true;
    profile.in_credentials_file = FindSection(**credentials, profile.name);
  }
  StatusOr<std::optional<AwsIniSections>> config = ReadSharedFile(env, profile.config_path);
  if (!config.ok()) return config.status();
  if (config->has_value()) {
    profile.config_file_exists = true;
    profile.in_config_file = FindConfigProfile(**config, profile.name);
  }
  return profile;
}

StatusOr<std::string> ResolveRegion(const std::string& configured, const AwsEnvironment& env) {
  const auto checked = [](std::string region, const std::string& where) -> StatusOr<std::string> {
    if (!IsValidRegion(region)) {
      return InvalidArgumentError("invalid AWS region " + QuoteForError(region) + " (from " + where +
                                  "): expected a name such as \"us-east-1\"");
    }
    return region;
  };
  if (!configured.empty()) return checked(configured, "queue.region");
  for (const char* var : {"AWS_REGION", "AWS_DEFAULT_REGION"}) {
    if (std::optional<std::string> region = NonEmptyEnv(env.getenv, var)) return checked(*region, var);
  }
  StatusOr<AwsProfile> profile = LoadAwsProfile(env);
  if (!profile.ok()) return profile.status().WithContext("cannot determine the AWS region");
  if (profile->in_config_file) {
    auto it = profile->in_config_file->find("region");
    if (it != profile->in_config_file->end() && !it->second.empty()) {
      return checked(it->second, "profile " + QuoteForError(profile->name) + " in " +
                                     QuoteForError(profile->config_path));
    }
  }
  const std::string file = profile->config_path.empty() ? "~/.aws/config" : profile->config_path;
  return InvalidArgumentError(
      "no AWS region configured: set queue.region in the config, or AWS_REGION, "
      "or \"region = ...\" in profile " +
      QuoteForError(profile->name) + " of " + QuoteForError(file));
}

std::string ResolveSqsEndpoint(const std::string& configured, const std::string& region,
                               const GetenvFunction& getenv) {
  std::string endpoint = configured;
  if (endpoint.empty()) {
    const std::optional<std::string> ignore = NonEmptyEnv(getenv, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
    if (!ignore || Lower(*ignore) != "true") {
      for (const char* var : {"AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL"}) {
        if (std::optional<std::string> value = NonEmptyEnv(getenv, var)) {
          endpoint = std::string(Trim(*value));
          if (!endpoint.empty()) break;
        }
      }
    }
  }
  if (endpoint.empty()) {
    // China regions live under their own domain:
    // https://docs.amazonaws.cn/en_us/aws/latest/userguide/endpoints-Beijing.html
    const bool china = region.rfind("cn-", 0) == 0;
    endpoint = "https://sqs." + region + (china ? ".amazonaws.com.cn" : ".amazonaws.com");
  }
  while (endpoint.size() > 1 && endpoint.back() == '/') endpoint.pop_back();
  return endpoint;
}

}  // namespace taskpipe
