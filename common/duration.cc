#include "common/duration.h"

#include <array>
#include <cstdint>
#include <limits>
#include <optional>

namespace taskpipe {
namespace {

struct Unit {
  std::string_view name;
  int64_t ms;
};

// Largest first: FormatDuration walks them in this order and ParseDuration requires it.
constexpr std::array<Unit, 5> kUnits = {{
    {"d", 24 * 3600 * 1000LL},
    {"h", 3600 * 1000LL},
    {"m", 60 * 1000LL},
    {"s", 1000LL},
    {"ms", 1LL},
}};

constexpr std::string_view kUnitList = "ms, s, m, h or d";

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// `text` as a double-quoted string, control and non-ASCII bytes escaped, shortened when long, so a
// message stays one readable line whatever the input was.
std::string Quote(std::string_view text) {
  constexpr size_t kMaxShown = 40;
  std::string out = "\"";
  for (size_t i = 0; i < text.size() && i < kMaxShown; ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {  // durations are ASCII: escape anything else
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > kMaxShown) out += "...";
  out += '"';
  return out;
}

std::optional<int64_t> UnitMs(std::string_view name) {
  for (const Unit& unit : kUnits) {
    if (unit.name == name) return unit.ms;
  }
  return std::nullopt;
}

// Words people write for units, to suggest the right one in the error message.
std::optional<std::string_view> UnitAlias(std::string_view word) {
  struct Alias {
    std::string_view word;
    std::string_view unit;
  };
  static constexpr Alias kAliases[] = {
      {"msec", "ms"},
      {"msecs", "ms"},
      {"millisecond", "ms"},
      {"milliseconds", "ms"},
      {"S", "s"},
      {"sec", "s"},
      {"secs", "s"},
      {"second", "s"},
      {"seconds", "s"},
      {"min", "m"},
      {"mins", "m"},
      {"minute", "m"},
      {"minutes", "m"},
      {"H", "h"},
      {"hr", "h"},
      {"hrs", "h"},
      {"hour", "h"},
      {"hours", "h"},
      {"D", "d"},
      {"day", "d"},
      {"days", "d"},
      {"MS", "ms"},
      {"Ms", "ms"},
  };
  for (const Alias& alias : kAliases) {
    if (alias.word == word) return alias.unit;
  }
  return std::nullopt;
}

std::string Expected(std::string_view text) { return "expected a duration like \"30s\", got " + Quote(text); }

bool CheckedMulAdd(int64_t a, int64_t b, int64_t c, int64_t* out) {
  int64_t product;
  if (__builtin_mul_overflow(a, b, &product)) return false;
  return !__builtin_add_overflow(product, c, out);
}

}  // namespace

StatusOr<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  if (text.empty()) return InvalidArgumentError(Expected(text));
  if (text[0] == '-' && text.size() > 1 && IsDigit(text[1])) {
    return InvalidArgumentError("a duration cannot be negative, got " + Quote(text));
  }
  int64_t total = 0;
  size_t previous_unit = kUnits.size() + 1;  // index into kUnits of the previous part's unit
  size_t i = 0;
  while (i < text.size()) {
    // Whole number.
    const size_t number_start = i;
    int64_t number = 0;
    bool number_overflow = false;
    while (i < text.size() && IsDigit(text[i])) {
      if (!CheckedMulAdd(number, 10, text[i] - '0', &number)) number_overflow = true;
      ++i;
    }
    if (i == number_start) return InvalidArgumentError(Expected(text));
    const std::string_view digits = text.substr(number_start, i - number_start);

    // Optional fraction: rejected below, but parsed so the message can say what to write.
    std::string_view fraction;
    if (i < text.size() && text[i] == '.') {
      const size_t fraction_start = ++i;
      while (i < text.size() && IsDigit(text[i])) ++i;
      fraction = text.substr(fraction_start, i - fraction_start);
      if (fraction.empty()) return InvalidArgumentError(Expected(text));
    }

    // Unit: a run of letters.
    const size_t unit_start = i;
    while (i < text.size() && IsLetter(text[i])) ++i;
    const std::string_view unit_name = text.substr(unit_start, i - unit_start);
    if (unit_name.empty()) {
      if (i < text.size()) return InvalidArgumentError(Expected(text));
      if (number_start == 0 && fraction.empty()) {
        return InvalidArgumentError("expected a duration like \"" + std::string(digits) +
                                    "s\" (a number needs a unit: " + std::string(kUnitList) + "), got " +
                                    Quote(text));
      }
      return InvalidArgumentError(Quote(text) +
                                  " ends in a number without a unit (units: " + std::string(kUnitList) + ")");
    }
    const std::optional<int64_t> unit_ms = UnitMs(unit_name);
    if (!unit_ms) {
      std::string message = "unknown unit " + Quote(unit_name) + " in " + Quote(text);
      if (std::optional<std::string_view> alias = UnitAlias(unit_name)) {
        message += ": write \"" + std::string(digits);
        if (!fraction.empty()) message += "." + std::string(fraction);
        message += std::string(*alias) + "\"";
      } else {
        message += " (units: " + std::string(kUnitList) + ")";
      }
      return InvalidArgumentError(std::move(message));
    }
    size_t unit_index = 0;
    while (kUnits[unit_index].ms != *unit_ms) ++unit_index;

    if (!fraction.empty()) {
      // Suggest the exact whole-unit spelling when there is one: "1.5h" -> "1h30m".
      while (!fraction.empty() && fraction.back() == '0') fraction.remove_suffix(1);
      std::string message = "fractions are not supported, got " + Quote(text);
      int64_t whole = 0;
      int64_t frac = 0;
      int64_t scale = 1;
      bool exact = !number_overflow && fraction.size() <= 9;
      if (exact) {
        for (char c : fraction) {
          frac = frac * 10 + (c - '0');
          scale *= 10;
        }
        // frac < 1e9 and unit <= 8.64e7, so frac * unit fits in int64.
        exact = (frac * *unit_ms) % scale == 0 &&
                CheckedMulAdd(number, *unit_ms, frac * *unit_ms / scale, &whole);
      }
      if (exact && number_start == 0 && i == text.size()) {
        message = "fractions are not supported: write \"" + FormatDuration(std::chrono::milliseconds(whole)) +
                  "\" instead of " + Quote(text);
      }
      return InvalidArgumentError(std::move(message));
    }

    if (previous_unit <= kUnits.size() && unit_index <= previous_unit) {
      return InvalidArgumentError(
          "units must go from the largest to the smallest, each at most once "
          "(like \"1h30m\"), got " +
          Quote(text));
    }
    previous_unit = unit_index;

    int64_t part;
    if (number_overflow || __builtin_mul_overflow(number, *unit_ms, &part) ||
        __builtin_add_overflow(total, part, &total)) {
      return InvalidArgumentError("duration " + Quote(text) + " is too large");
    }
  }
  return std::chrono::milliseconds(total);
}

std::string FormatDuration(std::chrono::milliseconds duration) {
  const int64_t count = duration.count();
  if (count == 0) return "0s";
  std::string out;
  // Magnitude as unsigned, so that milliseconds::min() does not overflow when negated.
  uint64_t rest = static_cast<uint64_t>(count);
  if (count < 0) {
    out = "-";
    rest = ~rest + 1;
  }
  for (const Unit& unit : kUnits) {
    const uint64_t unit_ms = static_cast<uint64_t>(unit.ms);
    if (rest >= unit_ms) {
      out += std::to_string(rest / unit_ms);
      out += unit.name;
      rest %= unit_ms;
    }
  }
  return out;
}

}  // namespace taskpipe
