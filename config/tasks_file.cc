#include "config/tasks_file.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>

#include "config/json_text.h"

namespace taskpipe {
namespace {

// Stop listing after this many bad lines: the file is clearly not what the user meant.
constexpr size_t kMaxReportedProblems = 20;

constexpr std::string_view kBlanks = " \t\r\n\f\v";

std::string_view Trim(std::string_view text) {
  const size_t begin = text.find_first_not_of(kBlanks);
  if (begin == std::string_view::npos) return {};
  const size_t end = text.find_last_not_of(kBlanks);
  return text.substr(begin, end - begin + 1);
}

class ProblemList {
 public:
  explicit ProblemList(std::string_view source_name) : source_name_(source_name) {}

  // Adds "<source>:<line>:<column>: <message>", leaving out a line or column of 0.
  void Add(size_t line, std::string_view message, size_t column = 0) {
    ++count_;
    if (count_ > kMaxReportedProblems) return;
    if (!text_.empty()) text_ += '\n';
    text_ += source_name_;
    if (line > 0) text_ += ":" + std::to_string(line);
    if (line > 0 && column > 0) text_ += ":" + std::to_string(column);
    text_ += ": ";
    text_ += message;
  }

  bool empty() const { return count_ == 0; }

  Status ToStatus() const {
    std::string text = text_;
    if (count_ > kMaxReportedProblems) {
      text += "\n" + source_name_ + ": ... and " + std::to_string(count_ - kMaxReportedProblems) +
              " more problems";
    }
    return InvalidArgumentError(std::move(text));
  }

 private:
  std::string source_name_;
  std::string text_;
  size_t count_ = 0;
};

StatusOr<std::vector<nlohmann::json>> ParseArray(std::string_view text, std::string_view source_name) {
  ProblemList problems(source_name);
  std::vector<JsonTextProblem> json_problems;
  std::optional<nlohmann::json> value = ParseJsonText(text, &json_problems);
  for (const JsonTextProblem& problem : json_problems) {
    if (problem.line > 0) {
      problems.Add(static_cast<size_t>(problem.line), problem.message, static_cast<size_t>(problem.column));
    } else {
      problems.Add(0, problem.path.empty() ? problem.message : problem.path + ": " + problem.message);
    }
  }
  if (!value) return problems.ToStatus();
  if (!value->is_array()) {
    // The first non-blank character was '[' yet the value is not an array: cannot happen, but
    // say so rather than assume.
    problems.Add(0, "expected a JSON array of tasks, got " + DescribeJsonValue(*value));
    return problems.ToStatus();
  }
  std::vector<nlohmann::json> tasks;
  tasks.reserve(value->size());
  for (size_t i = 0; i < value->size(); ++i) {
    nlohmann::json& task = (*value)[i];
    if (task.is_string() || task.is_object()) {
      tasks.push_back(std::move(task));
    } else {
      problems.Add(
          0, JsonPathIndex("", i) + ": a task must be a string or an object, got " + DescribeJsonValue(task));
    }
  }
  if (!problems.empty()) return problems.ToStatus();
  return tasks;
}

StatusOr<std::vector<nlohmann::json>> ParseLines(std::string_view text, std::string_view source_name) {
  ProblemList problems(source_name);
  std::vector<nlohmann::json> tasks;
  size_t line_number = 0;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    ++line_number;
    const std::string_view raw_line = text.substr(start, end - start);
    const std::string_view line = Trim(raw_line);  // also drops the '\r' of CRLF
    const size_t indent = line.empty() ? 0 : static_cast<size_t>(line.data() - raw_line.data());
    start = end + 1;
    if (line.empty() || line[0] == '#') continue;

    if (line[0] == '{' || line[0] == '"') {
      const bool want_object = line[0] == '{';
      std::vector<JsonTextProblem> json_problems;
      std::optional<nlohmann::json> value = ParseJsonText(line, &json_problems);
      std::string what = want_object ? "a JSON object" : "a JSON string";
      if (!value) {
        const JsonTextProblem& problem = json_problems.front();
        problems.Add(line_number, "line starts with '" + std::string(1, line[0]) + "' but is not " + what +
                                      ": column " +
                                      std::to_string(indent + static_cast<size_t>(problem.column)) + ": " +
                                      problem.message);
        continue;
      }
      if (want_object ? !value->is_object() : !value->is_string()) {
        problems.Add(line_number, "line starts with '" + std::string(1, line[0]) + "' but is not " + what +
                                      ", got " + DescribeJsonValue(*value));
        continue;
      }
      if (!json_problems.empty()) {
        const JsonTextProblem& problem = json_problems.front();
        problems.Add(line_number, (problem.path.empty() ? "" : problem.path + ": ") + problem.message);
        continue;
      }
      tasks.push_back(std::move(*value));
      continue;
    }

    if (!IsValidUtf8(line)) {
      problems.Add(line_number, "not valid UTF-8 text");
      continue;
    }
    tasks.emplace_back(std::string(line));
  }
  if (!problems.empty()) return problems.ToStatus();
  return tasks;
}

// Whether the first character after blanks and // or /* */ comments is '['.
bool StartsWithJsonArray(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    i = text.find_first_not_of(kBlanks, i);
    if (i == std::string_view::npos) return false;
    if (text.substr(i, 2) == "//") {
      i = text.find('\n', i);
    } else if (text.substr(i, 2) == "/*") {
      i = text.find("*/", i + 2);
      if (i != std::string_view::npos) i += 2;
    } else {
      return text[i] == '[';
    }
  }
  return false;
}

}  // namespace

StatusOr<std::vector<nlohmann::json>> ParseTasksText(std::string_view text, std::string_view source_name) {
  constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";
  if (text.substr(0, kUtf8Bom.size()) == kUtf8Bom) text.remove_prefix(kUtf8Bom.size());
  if (StartsWithJsonArray(text)) return ParseArray(text, source_name);
  return ParseLines(text, source_name);
}

StatusOr<std::vector<nlohmann::json>> LoadTasksFile(const std::string& path) {
  StatusOr<std::string> text = ReadTextFile(path, "tasks file");
  if (!text.ok()) return text.status();
  return ParseTasksText(*text, path);
}

StatusOr<std::string> ReadTextFile(const std::string& path, std::string_view what) {
  const auto failure = [&](std::string_view reason) {
    return InvalidArgumentError("cannot read " + std::string(what) + " " + QuoteText(path) + ": " +
                                std::string(reason));
  };
  if (path.empty()) return failure("empty file name");
  errno = 0;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) return failure(std::strerror(errno));
  std::string content;
  char buffer[64 * 1024];
  while (true) {
    const size_t n = std::fread(buffer, 1, sizeof buffer, file.get());
    content.append(buffer, n);
    if (content.size() > kMaxTextFileBytes) {
      return failure("larger than " + std::to_string(kMaxTextFileBytes >> 20) + " MiB");
    }
    if (n < sizeof buffer) {
      // A directory opens fine on Linux and fails here with EISDIR.
      if (std::ferror(file.get())) return failure(std::strerror(errno));
      break;
    }
  }
  return content;
}

}  // namespace taskpipe
