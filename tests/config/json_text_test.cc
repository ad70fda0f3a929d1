#include "config/json_text.h"

#include <gtest/gtest.h>

#include <string>

namespace taskpipe {
namespace {

std::string Nest(int levels) {
  const auto n = static_cast<std::size_t>(levels);
  return std::string(n, '[') + std::string(n, ']');
}

TEST(ScanJsonBracketsTest, DepthLimitCountsObjectsAndArraysButNotStrings) {
  EXPECT_FALSE(ScanJsonBrackets(Nest(64), 64).too_deep);
  EXPECT_TRUE(ScanJsonBrackets(Nest(65), 64).too_deep);
  EXPECT_FALSE(ScanJsonBrackets(R"({"a":[{"b":{}}]})", 4).too_deep);
  EXPECT_TRUE(ScanJsonBrackets(R"({"a":[{"b":{}}]})", 3).too_deep);
  // Brackets inside strings, escaped quotes included, are text.
  EXPECT_FALSE(ScanJsonBrackets(R"({"a":"[[[[{{{{\"[[[["})", 1).too_deep);
  // Anywhere in the text, not only in the first value.
  EXPECT_TRUE(ScanJsonBrackets("{} " + Nest(10), 5).too_deep);
  EXPECT_FALSE(ScanJsonBrackets("", 0).too_deep);
}

TEST(ScanJsonBracketsTest, EndIsJustPastTheBracketThatClosesTheFirstValue) {
  EXPECT_EQ(ScanJsonBrackets(R"({"a":{"}":"{"},"b":[1,2]},"rest":{}})", 64).end, 25u);
  EXPECT_EQ(ScanJsonBrackets("[[]]x]", 64).end, 4u);
  EXPECT_EQ(ScanJsonBrackets(R"({"a":"\\"})", 64).end, 10u);  // an escaped backslash ends no string
  // Not a bracketed value, or one that does not close: 0.
  EXPECT_EQ(ScanJsonBrackets(R"("x"{})", 64).end, 0u);
  EXPECT_EQ(ScanJsonBrackets(" {}", 64).end, 0u);
  EXPECT_EQ(ScanJsonBrackets(R"({"a":[1,2})", 64).end, 0u);
  EXPECT_EQ(ScanJsonBrackets(R"({"a":"})", 64).end, 0u);
  EXPECT_EQ(ScanJsonBrackets("{{}", 64).end, 0u);
}

}  // namespace
}  // namespace taskpipe
