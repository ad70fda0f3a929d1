#include "config/json_text.h"

#include <algorithm>
#include <set>

namespace taskpipe {
namespace {

// Length of the well-formed UTF-8 sequence starting at text[i], or 0 if there is none.
size_t Utf8SequenceLength(std::string_view text, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char c = byte(i);
  if (c < 0x80) return 1;
  size_t length;
  unsigned char min_second = 0x80;
  unsigned char max_second = 0xbf;
  if (c >= 0xc2 && c <= 0xdf) {
    length = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    length = 3;
    if (c == 0xe0) min_second = 0xa0;  // overlong
    if (c == 0xed) max_second = 0x9f;  // surrogates
  } else if (c >= 0xf0 && c <= 0xf4) {
    length = 4;
    if (c == 0xf0) min_second = 0x90;  // overlong
    if (c == 0xf4) max_second = 0x8f;  // above U+10FFFF
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  if (byte(i + 1) < min_second || byte(i + 1) > max_second) return 0;
  for (size_t k = 2; k < length; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xbf) return 0;
  }
  return length;
}

bool IsPlainKey(std::string_view key) {
  if (key.empty()) return false;
  return std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

// "[json.exception.parse_error.101] parse error at line 3, column 3: syntax error while parsing
// object key - unexpected '}'; expected string literal" -> the part after the position, which we
// compute ourselves (nlohmann reports a newline inside a string as "line 2, column 0").
std::string SyntaxErrorDetail(const std::string& what) {
  const size_t at = what.find("syntax error");
  std::string detail = at == std::string::npos ? what : what.substr(at);
  // The "last read" excerpt may hold bytes that are not UTF-8; keep the message printable.
  std::string out;
  for (size_t i = 0; i < detail.size();) {
    const size_t length = Utf8SequenceLength(detail, i);
    if (length == 0) {
      static constexpr char kHex[] = "0123456789abcdef";
      const unsigned char c = static_cast<unsigned char>(detail[i]);
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
      ++i;
    } else {
      out.append(detail, i, length);
      i += length;
    }
  }
  return out;
}

void LineColumn(std::string_view text, size_t byte_offset, int* line_out, int* column_out) {
  const size_t end = std::min(byte_offset, text.size());
  size_t line = 1;
  size_t line_start = 0;
  for (size_t i = 0; i < end; ++i) {
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  size_t column = 1;
  for (size_t i = line_start; i < end; ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xc0) != 0x80) ++column;  // count characters
  }
  *line_out = static_cast<int>(line);
  *column_out = static_cast<int>(column);
}

// Tracks where the parser is, from the callback's depth argument, to name duplicate keys and
// over-deep values by path. Frames past kMaxJsonDepth are never pushed, so a hostile file of a
// million '[' costs a bounded amount of memory.
class PathTracker {
 public:
  explicit PathTracker(std::vector<JsonTextProblem>* problems) : problems_(problems) {}

  bool OnEvent(int depth_arg, nlohmann::json::parse_event_t event, const nlohmann::json& parsed) {
    using Event = nlohmann::json::parse_event_t;
    const size_t depth = static_cast<size_t>(std::max(depth_arg, 0));
    switch (event) {
      case Event::object_start:
      case Event::array_start: {
        if (depth > frames_.size()) return false;  // inside a dropped value
        std::string path = depth == 0 ? std::string() : NextElementPath(frames_[depth - 1]);
        if (depth >= static_cast<size_t>(kMaxJsonDepth)) {
          problems_->push_back({path, "nested more than " + std::to_string(kMaxJsonDepth) + " levels deep"});
          return false;
        }
        frames_.resize(depth);
        frames_.push_back({event == Event::array_start, std::move(path), 0, {}, {}});
        return true;
      }
      case Event::key: {
        if (depth == 0 || depth > frames_.size()) return true;
        Frame& frame = frames_[depth - 1];
        frame.key = parsed.is_string() ? parsed.get<std::string>() : std::string();
        if (!frame.keys.insert(frame.key).second) {
          problems_->push_back(
              {JsonPathKey(frame.path, frame.key), "duplicate key (JSON would keep only the last)"});
        }
        return true;
      }
      case Event::value:
        if (depth > 0 && depth <= frames_.size()) NextElementPath(frames_[depth - 1]);
        return true;
      case Event::object_end:
      case Event::array_end:
        return true;
    }
    return true;
  }

 private:
  struct Frame {
    bool is_array;
    std::string path;
    size_t next_index;
    std::string key;  // objects: the key being read
    std::set<std::string> keys;
  };

  static std::string NextElementPath(Frame& parent) {
    if (parent.is_array) return JsonPathIndex(parent.path, parent.next_index++);
    return JsonPathKey(parent.path, parent.key);
  }

  std::vector<JsonTextProblem>* problems_;
  std::vector<Frame> frames_;
};

// A SAX handler that builds nothing and records the first parse error.
struct ErrorCatcher {
  using json = nlohmann::json;
  bool null() { return true; }
  bool boolean(bool) { return true; }
  bool number_integer(json::number_integer_t) { return true; }
  bool number_unsigned(json::number_unsigned_t) { return true; }
  bool number_float(json::number_float_t, const json::string_t&) { return true; }
  bool string(json::string_t&) { return true; }
  bool binary(json::binary_t&) { return true; }
  bool start_object(std::size_t) { return true; }
  bool key(json::string_t&) { return true; }
  bool end_object() { return true; }
  bool start_array(std::size_t) { return true; }
  bool end_array() { return true; }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::json::exception& e) {
    byte = position;
    detail = e.what();
    return false;
  }

  size_t byte = 1;
  std::string detail;
};

}  // namespace

std::optional<nlohmann::json> ParseJsonText(std::string_view text, std::vector<JsonTextProblem>* problems) {
  std::vector<JsonTextProblem> found;
  PathTracker tracker(&found);
  nlohmann::json value;
  try {
    value = nlohmann::json::parse(
        text,
        [&tracker](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
          return tracker.OnEvent(depth, event, parsed);
        },
        /*allow_exceptions=*/false, /*ignore_comments=*/true);
  } catch (const nlohmann::json::exception& e) {
    // Not expected with allow_exceptions=false, but no exception leaves the loaders.
    problems->push_back({"", std::string("cannot parse JSON: ") + e.what()});
    return std::nullopt;
  }
  if (value.is_discarded()) {
    // The non-throwing mode says only "failed"; run the parser again, building nothing, for the
    // position and the reason.
    ErrorCatcher catcher;
    try {
      nlohmann::json::sax_parse(text, &catcher, nlohmann::json::input_format_t::json, /*strict=*/true,
                                /*ignore_comments=*/true);
    } catch (const nlohmann::json::exception& e) {
      catcher.detail = e.what();
    }
    const std::string detail = SyntaxErrorDetail(catcher.detail.empty() ? "syntax error" : catcher.detail);
    const size_t byte = catcher.byte;
    // parse_error::byte is 1-based: the offending byte is text[byte - 1].
    JsonTextProblem problem{"", detail};
    LineColumn(text, byte == 0 ? 0 : byte - 1, &problem.line, &problem.column);
    problems->push_back(std::move(problem));
    return std::nullopt;
  }
  problems->insert(problems->end(), found.begin(), found.end());
  return value;
}

std::string JsonPathKey(std::string_view parent, std::string_view key) {
  if (!IsPlainKey(key)) return std::string(parent) + "[" + QuoteText(key) + "]";
  if (parent.empty()) return std::string(key);
  std::string out(parent);
  out += '.';
  out += key;
  return out;
}

std::string JsonPathIndex(std::string_view parent, size_t index) {
  return std::string(parent) + "[" + std::to_string(index) + "]";
}

std::string QuoteText(std::string_view text) {
  constexpr size_t kMaxShown = 60;
  std::string out = "\"";
  size_t i = 0;
  for (; i < text.size() && i < kMaxShown;) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    const size_t length = Utf8SequenceLength(text, i);
    static constexpr char kHex[] = "0123456789abcdef";
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f || length == 0) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out.append(text.substr(i, length));
      i += length;
      continue;
    }
    ++i;
  }
  if (i < text.size()) out += "...";
  out += '"';
  return out;
}

std::string DescribeJsonValue(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::string:
      return QuoteText(value.get_ref<const std::string&>());
    case nlohmann::json::value_t::object:
      return "an object";
    case nlohmann::json::value_t::array:
      return "an array";
    case nlohmann::json::value_t::null:
      return "null";
    case nlohmann::json::value_t::boolean:
      return value.get<bool>() ? "true" : "false";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
    case nlohmann::json::value_t::number_float:
      return value.dump();
    case nlohmann::json::value_t::binary:
      return "binary data";
    case nlohmann::json::value_t::discarded:
      return "nothing";
  }
  return "a value";
}

bool IsValidUtf8(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    const size_t length = Utf8SequenceLength(text, i);
    if (length == 0) return false;
    i += length;
  }
  return true;
}

JsonBrackets ScanJsonBrackets(std::string_view text, int max_depth) {
  JsonBrackets result;
  int depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max_depth) {
        result.too_deep = true;
        return result;
      }
    } else if (c == '}' || c == ']') {
      if (--depth == 0 && result.end == 0 && (text[0] == '{' || text[0] == '[')) result.end = i + 1;
    }
  }
  return result;
}

}  // namespace taskpipe
