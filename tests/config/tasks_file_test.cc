#include "config/tasks_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>

namespace taskpipe {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::StartsWith;

std::vector<json> Parse(std::string_view text, std::string_view name = "tasks.txt") {
  StatusOr<std::vector<json>> tasks = ParseTasksText(text, name);
  EXPECT_TRUE(tasks.ok()) << tasks.status().ToString();
  return tasks.ok() ? *tasks : std::vector<json>{};
}

std::string Error(std::string_view text, std::string_view name = "tasks.txt") {
  StatusOr<std::vector<json>> tasks = ParseTasksText(text, name);
  EXPECT_FALSE(tasks.ok()) << text;
  if (tasks.ok()) return "";
  EXPECT_EQ(tasks.status().code(), StatusCode::kInvalidArgument);
  return tasks.status().message();
}

TEST(TasksFileTest, JsonArrayOfStringsAndObjects) {
  const std::vector<json> tasks = Parse(R"(
    // comments are allowed, as in the config
    ["Hello #1", {"report": "sales", "day": "yesterday"}, /* more */ "${NOT_EXPANDED}"]
  )");
  ASSERT_EQ(tasks.size(), 3u);
  EXPECT_EQ(tasks[0], "Hello #1");
  EXPECT_EQ(tasks[1], json({{"report", "sales"}, {"day", "yesterday"}}));
  EXPECT_EQ(tasks[2], "${NOT_EXPANDED}");  // a tasks file is data
}

TEST(TasksFileTest, CommentsBeforeTheArrayKeepJsonForm) {
  EXPECT_EQ(Parse("/* header */ // more\n\n[\"a\"]").size(), 1u);
  EXPECT_EQ(Parse("/* unterminated [\"a\"]").size(), 1u);  // no '[' first: one plain-text line
  // A '#' comment means line form; the '[' line is then plain text.
  EXPECT_THAT(Parse("# tasks\n[\"a\"]"), ::testing::ElementsAre(json("[\"a\"]")));
}

TEST(TasksFileTest, JsonArrayWithBomAndCrlf) {
  const std::vector<json> tasks = Parse("\xEF\xBB\xBF[\r\n  \"a\",\r\n  {\"b\": 1}\r\n]\r\n");
  ASSERT_EQ(tasks.size(), 2u);
  EXPECT_EQ(tasks[1], json({{"b", 1}}));
}

TEST(TasksFileTest, EmptyJsonArrayHasNoTasks) { EXPECT_TRUE(Parse("[]").empty()); }

TEST(TasksFileTest, JsonArrayElementThatIsNotATaskNamesItsIndex) {
  EXPECT_EQ(Error(R"(["a", 5, {"x": 1}, null, ["nested"]])", "tasks.json"),
            "tasks.json: [1]: a task must be a string or an object, got 5\n"
            "tasks.json: [3]: a task must be a string or an object, got null\n"
            "tasks.json: [4]: a task must be a string or an object, got an array");
}

TEST(TasksFileTest, JsonArraySyntaxErrorNamesFileLineAndColumn) {
  EXPECT_THAT(Error("[\n  \"a\",\n  \"b\" \"c\"\n]", "tasks.json"),
              StartsWith("tasks.json:3:9: syntax error while parsing array"));
  EXPECT_THAT(Error("[\"a\",", "tasks.json"), StartsWith("tasks.json:1:6: syntax error"));
  EXPECT_THAT(Error("[\"a\"] trailing", "tasks.json"), StartsWith("tasks.json:1:9: syntax error"));
}

TEST(TasksFileTest, DuplicateKeyInATaskObjectIsAnError) {
  EXPECT_EQ(Error(R"([{"a": 1, "a": 2}])", "tasks.json"),
            "tasks.json: [0].a: duplicate key (JSON would keep only the last)");
}

TEST(TasksFileTest, DeepNestingIsRejectedNotACrash) {
  const std::string deep = "[" + std::string(100000, '[') + std::string(100000, ']') + "]";
  EXPECT_THAT(Error(deep, "tasks.json"), HasSubstr("nested more than 64 levels deep"));
  const std::string deep_object = "[{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}]";
  EXPECT_THAT(Error(deep_object, "tasks.json"), HasSubstr("nested more than 64 levels deep"));
  // A deep syntax error: the second parse builds nothing either.
  EXPECT_THAT(Error("[" + std::string(100000, '['), "tasks.json"), HasSubstr("syntax error"));
}

TEST(TasksFileTest, LineFormPlainTextJsonObjectsAndJsonStrings) {
  const std::vector<json> tasks = Parse(
      "# nightly tasks\n"
      "\n"
      "Hello from taskpipe #1\n"
      "   indented text is trimmed   \n"
      "{\"report\": \"sales\", \"day\": \"yesterday\"}\n"
      "\"#not a comment\"\n"
      "  # indented comment\n"
      "42\n"
      "[not an array: only the first character of the file decides]\n"
      "héllo wörld\n");
  ASSERT_EQ(tasks.size(), 7u);
  EXPECT_EQ(tasks[0], "Hello from taskpipe #1");
  EXPECT_EQ(tasks[1], "indented text is trimmed");
  EXPECT_EQ(tasks[2], json({{"report", "sales"}, {"day", "yesterday"}}));
  EXPECT_EQ(tasks[3], "#not a comment");
  EXPECT_EQ(tasks[4], "42");  // plain text is always a string
  EXPECT_EQ(tasks[5], "[not an array: only the first character of the file decides]");
  EXPECT_EQ(tasks[6], "héllo wörld");
}

TEST(TasksFileTest, LineFormHandlesCrlfAndMissingFinalNewline) {
  const std::vector<json> tasks = Parse("# c\r\none\r\n\r\n{\"two\": 2}\r\nthree");
  ASSERT_EQ(tasks.size(), 3u);
  EXPECT_EQ(tasks[0], "one");
  EXPECT_EQ(tasks[1], json({{"two", 2}}));
  EXPECT_EQ(tasks[2], "three");
}

TEST(TasksFileTest, EmptyOrCommentOnlyTextHasNoTasks) {
  EXPECT_TRUE(Parse("").empty());
  EXPECT_TRUE(Parse("\n\r\n   \n").empty());
  EXPECT_TRUE(Parse("# only\n# comments\n").empty());
}

TEST(TasksFileTest, BadJsonLinesAreReportedWithTheirLineNumbers) {
  EXPECT_EQ(
      Error("ok\n"
            "# comment\n"
            "{\"a\": 1,}\n"
            "fine\n"
            "  \"unterminated\n"
            "\"two\" \"strings\"\n"
            "{\"a\": 1, \"a\": 2}\n"),
      "tasks.txt:3: line starts with '{' but is not a JSON object: column 9: syntax error while parsing "
      "object key - unexpected '}'; expected string literal\n"
      "tasks.txt:5: line starts with '\"' but is not a JSON string: column 16: syntax error while parsing "
      "value - invalid string: missing closing quote; last read: '\"unterminated'\n"
      "tasks.txt:6: line starts with '\"' but is not a JSON string: column 15: syntax error while parsing "
      "value - unexpected string literal; expected end of input\n"
      "tasks.txt:7: a: duplicate key (JSON would keep only the last)");
}

TEST(TasksFileTest, InvalidUtf8PlainTextIsAnError) {
  EXPECT_EQ(Error("good\nbad \xff\xfe\n"), "tasks.txt:2: not valid UTF-8 text");
}

TEST(TasksFileTest, ManyBadLinesAreCapped) {
  std::string text;
  for (int i = 0; i < 50; ++i) text += "{bad\n";
  const std::string message = Error(text);
  EXPECT_EQ(std::count(message.begin(), message.end(), '\n'), 20);
  EXPECT_THAT(message, HasSubstr("tasks.txt: ... and 30 more problems"));
}

class TasksFileOnDiskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    dir_ = std::filesystem::temp_directory_path() /
           ("taskpipe_tasks_file_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  std::string Write(const std::string& name, const std::string& content) {
    const std::filesystem::path path = dir_ / name;
    std::ofstream(path, std::ios::binary) << content;
    return path.string();
  }

  std::filesystem::path dir_;
};

TEST_F(TasksFileOnDiskTest, LoadsAFile) {
  const std::string path = Write("tasks.txt", "one\n{\"two\": 2}\n");
  StatusOr<std::vector<json>> tasks = LoadTasksFile(path);
  ASSERT_TRUE(tasks.ok()) << tasks.status().ToString();
  EXPECT_EQ(*tasks, (std::vector<json>{"one", json({{"two", 2}})}));
}

TEST_F(TasksFileOnDiskTest, ErrorsNameThePath) {
  const std::string path = Write("tasks.txt", "one\n{oops\n");
  StatusOr<std::vector<json>> tasks = LoadTasksFile(path);
  ASSERT_FALSE(tasks.ok());
  EXPECT_THAT(tasks.status().message(), StartsWith(path + ":2: line starts with '{'"));
}

TEST_F(TasksFileOnDiskTest, EmptyFileHasNoTasks) {
  StatusOr<std::vector<json>> tasks = LoadTasksFile(Write("empty.txt", ""));
  ASSERT_TRUE(tasks.ok());
  EXPECT_TRUE(tasks->empty());
}

TEST_F(TasksFileOnDiskTest, MissingFileIsAClearError) {
  const std::string path = (dir_ / "nope.txt").string();
  StatusOr<std::vector<json>> tasks = LoadTasksFile(path);
  ASSERT_FALSE(tasks.ok());
  EXPECT_EQ(tasks.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(tasks.status().message(), "cannot read tasks file \"" + path + "\": No such file or directory");
}

TEST_F(TasksFileOnDiskTest, DirectoryIsAClearError) {
  StatusOr<std::vector<json>> tasks = LoadTasksFile(dir_.string());
  ASSERT_FALSE(tasks.ok());
  EXPECT_EQ(tasks.status().message(), "cannot read tasks file \"" + dir_.string() + "\": Is a directory");
}

TEST_F(TasksFileOnDiskTest, ReadTextFileNamesWhatItReads) {
  EXPECT_EQ(ReadTextFile("", "config").status().message(), "cannot read config \"\": empty file name");
  StatusOr<std::string> text = ReadTextFile(Write("x.json", std::string("a\0b", 3)), "config");
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, std::string("a\0b", 3));
}

}  // namespace
}  // namespace taskpipe
