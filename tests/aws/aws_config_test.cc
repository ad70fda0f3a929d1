#include "aws/aws_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

namespace taskpipe {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

// An environment and a file system held in maps.
struct FakeSystem {
  std::map<std::string, std::string> vars;
  std::map<std::string, std::string> files;

  AwsEnvironment Environment() {
    return AwsEnvironment{.getenv = [this](const std::string& name) -> std::optional<std::string> {
                            auto it = vars.find(name);
                            if (it == vars.end()) return std::nullopt;
                            return it->second;
                          },
                          .read_file = [this](const std::string& path) -> StatusOr<std::string> {
                            auto it = files.find(path);
                            if (it == files.end()) return NotFoundError("no such file " + path);
                            return it->second;
                          },
                          .home = "/home/u"};
  }
};

TEST(ParseAwsIniTest, SectionsKeysCommentsAndWhitespace) {
  StatusOr<AwsIniSections> ini = ParseAwsIni(
      "# a comment\n"
      "; another\n"
      "\n"
      "[default]\n"
      "aws_access_key_id=AKID\n"
      "  \t\n"
      "AWS_Secret_Access_Key =  with spaces  \n"
      "[ profile   dev ]   # trailing comment\r\n"
      "region = eu-west-1 ; inline comment\n"
      "hash_in_value = a#b;c\n"
      "empty =\n"
      "[default]\n"
      "extra = yes\n",
      "f");
  ASSERT_TRUE(ini.ok()) << ini.status().ToString();
  ASSERT_EQ(ini->size(), 2u);
  const auto& def = ini->at("default");
  EXPECT_EQ(def.at("aws_access_key_id"), "AKID");
  EXPECT_EQ(def.at("aws_secret_access_key"), "with spaces");
  EXPECT_EQ(def.at("extra"), "yes");  // a repeated section is merged
  const auto& dev = ini->at("profile   dev");
  EXPECT_EQ(dev.at("region"), "eu-west-1");
  EXPECT_EQ(dev.at("hash_in_value"), "a#b;c");
  EXPECT_EQ(dev.at("empty"), "");
}

TEST(ParseAwsIniTest, SubPropertiesAndContinuations) {
  StatusOr<AwsIniSections> ini = ParseAwsIni(
      "[profile p]\n"
      "s3 =\n"
      "  max_concurrent_requests = 20\n"
      "  Addressing_Style = path\n"
      "note = first\n"
      "   second\n"
      "region = us-west-2\n",
      "f");
  ASSERT_TRUE(ini.ok()) << ini.status().ToString();
  const auto& p = ini->at("profile p");
  EXPECT_EQ(p.at("s3.max_concurrent_requests"), "20");
  EXPECT_EQ(p.at("s3.addressing_style"), "path");
  EXPECT_EQ(p.at("note"), "first\nsecond");
  EXPECT_EQ(p.at("region"), "us-west-2");
}

TEST(ParseAwsIniTest, EmptyAndCommentOnlyFilesAreFine) {
  EXPECT_TRUE(ParseAwsIni("", "f").ok());
  EXPECT_TRUE(ParseAwsIni("# nothing\n\n", "f")->empty());
  StatusOr<AwsIniSections> bom = ParseAwsIni("\xEF\xBB\xBF[default]\nregion=x\n", "f");
  ASSERT_TRUE(bom.ok());
  EXPECT_EQ(bom->at("default").at("region"), "x");
}

TEST(ParseAwsIniTest, MalformedLinesNameFileAndLineButNotTheText) {
  struct Case {
    std::string text;
    int line;
    std::string what;
  };
  for (const Case& c : std::vector<Case>{
           {"[default]\naws_secret_access_key SECRETVALUE1\n", 2, "expected"},
           {"aws_secret_access_key = SECRETVALUE1\n", 1, "before any [section]"},
           {"[default\nx=SECRETVALUE1\n", 1, "closing ']'"},
           {"[]\n", 1, "empty section name"},
           {"[default] SECRETVALUE1\n", 1, "after the section header"},
           {"[default]\n= SECRETVALUE1\n", 2, "empty key"},
           {"[default]\n  SECRETVALUE1\n", 2, "does not continue"},
           {"[default]\ns3 =\n  SECRETVALUE1\n", 3, "sub-property"},
       }) {
    StatusOr<AwsIniSections> ini = ParseAwsIni(c.text, "/home/u/.aws/credentials");
    ASSERT_FALSE(ini.ok()) << c.text;
    EXPECT_EQ(ini.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(ini.status().message(),
                AllOf(HasSubstr("\"/home/u/.aws/credentials\" line " + std::to_string(c.line) + ":"),
                      HasSubstr(c.what), Not(HasSubstr("SECRETVALUE1"))))
        << c.text;
  }
}

TEST(LoadAwsProfileTest, DefaultPathsAndProfileSelection) {
  FakeSystem sys;
  sys.files["/home/u/.aws/credentials"] =
      "[default]\naws_access_key_id = A1\n[dev]\naws_access_key_id = D1\n";
  sys.files["/home/u/.aws/config"] =
      "[default]\nregion = us-east-1\n[profile dev]\nregion = eu-west-1\naws_access_key_id = D2\n"
      "[dev]\nregion = ignored-without-profile-prefix\n";
  StatusOr<AwsProfile> def = LoadAwsProfile(sys.Environment());
  ASSERT_TRUE(def.ok()) << def.status().ToString();
  EXPECT_EQ(def->name, "default");
  EXPECT_FALSE(def->name_from_env);
  EXPECT_TRUE(def->found());
  EXPECT_EQ(def->Get("aws_access_key_id"), "A1");
  EXPECT_EQ(def->Get("region"), "us-east-1");

  sys.vars["AWS_PROFILE"] = "dev";
  StatusOr<AwsProfile> dev = LoadAwsProfile(sys.Environment());
  ASSERT_TRUE(dev.ok());
  EXPECT_TRUE(dev->name_from_env);
  EXPECT_EQ(dev->Get("aws_access_key_id"), "D1");  // the credentials file wins
  EXPECT_EQ(dev->Get("region"), "eu-west-1");
  EXPECT_EQ(dev->Get("missing"), std::nullopt);

  sys.vars["AWS_PROFILE"] = "nope";
  StatusOr<AwsProfile> nope = LoadAwsProfile(sys.Environment());
  ASSERT_TRUE(nope.ok());
  EXPECT_FALSE(nope->found());
  EXPECT_EQ(nope->DescribeFiles(), "\"/home/u/.aws/credentials\", \"/home/u/.aws/config\"");
}

TEST(LoadAwsProfileTest, FileVariablesTildeAndMissingFiles) {
  FakeSystem sys;
  sys.vars["AWS_SHARED_CREDENTIALS_FILE"] = "~/creds";
  sys.vars["AWS_CONFIG_FILE"] = "/etc/aws-config";
  sys.files["/home/u/creds"] = "[default]\naws_access_key_id = X\n";
  StatusOr<AwsProfile> profile = LoadAwsProfile(sys.Environment());
  ASSERT_TRUE(profile.ok());
  EXPECT_EQ(profile->credentials_path, "/home/u/creds");
  EXPECT_EQ(profile->config_path, "/etc/aws-config");
  EXPECT_TRUE(profile->credentials_file_exists);
  EXPECT_FALSE(profile->config_file_exists);
  EXPECT_EQ(profile->Get("aws_access_key_id"), "X");
  EXPECT_EQ(profile->DescribeFiles(), "\"/home/u/creds\", \"/etc/aws-config\" (not found)");
}

TEST(LoadAwsProfileTest, ProfileDefaultInConfigFile) {
  FakeSystem sys;
  sys.files["/home/u/.aws/config"] = "[profile default]\nregion = a\n";
  EXPECT_EQ(LoadAwsProfile(sys.Environment())->Get("region"), "a");
}

TEST(LoadAwsProfileTest, UnreadableFileIsAnErrorButMissingIsNot) {
  FakeSystem sys;
  AwsEnvironment env = sys.Environment();
  env.read_file = [](const std::string& path) -> StatusOr<std::string> {
    if (path.find("config") != std::string::npos)
      return PermissionDeniedError("cannot read \"" + path + "\"");
    return NotFoundError("missing");
  };
  StatusOr<AwsProfile> profile = LoadAwsProfile(env);
  ASSERT_FALSE(profile.ok());
  EXPECT_EQ(profile.status().code(), StatusCode::kPermissionDenied);
  EXPECT_THAT(profile.status().message(), HasSubstr("/home/u/.aws/config"));
}

TEST(LoadAwsProfileTest, NoHome) {
  FakeSystem sys;
  AwsEnvironment env = sys.Environment();
  env.home = "";
  StatusOr<AwsProfile> profile = LoadAwsProfile(env);  // HOME unset in the fake environment
  ASSERT_TRUE(profile.ok());
  EXPECT_FALSE(profile->found());
  EXPECT_THAT(profile->DescribeFiles(), HasSubstr("HOME is not set"));
  sys.vars["HOME"] = "/root";
  EXPECT_EQ(LoadAwsProfile(sys.Environment())->config_path, "/home/u/.aws/config");  // options win
  env.home = "";
  EXPECT_EQ(LoadAwsProfile(env)->config_path, "/root/.aws/config");
}

TEST(ReadLocalFileTest, ReadsAndMapsErrors) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "taskpipe_aws_config_test";
  std::filesystem::create_directories(dir);
  const std::string file = (dir / "f.ini").string();
  {
    std::ofstream out(file, std::ios::binary);
    out << "[default]\nregion=x\n";
  }
  StatusOr<std::string> text = ReadLocalFile(file);
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  EXPECT_EQ(*text, "[default]\nregion=x\n");
  EXPECT_EQ(ReadLocalFile((dir / "missing").string()).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ReadLocalFile(file + "/below-a-file").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ReadLocalFile(dir.string()).status().code(), StatusCode::kInvalidArgument);  // a directory
  std::filesystem::remove_all(dir);
}

TEST(ResolveRegionTest, Precedence) {
  FakeSystem sys;
  sys.files["/home/u/.aws/config"] =
      "[default]\nregion = from-file-1\n[profile p]\nregion = from-profile-1\n";
  EXPECT_EQ(*ResolveRegion("", sys.Environment()), "from-file-1");
  sys.vars["AWS_PROFILE"] = "p";
  EXPECT_EQ(*ResolveRegion("", sys.Environment()), "from-profile-1");
  sys.vars["AWS_DEFAULT_REGION"] = "eu-central-1";
  EXPECT_EQ(*ResolveRegion("", sys.Environment()), "eu-central-1");
  sys.vars["AWS_REGION"] = "us-west-2";
  EXPECT_EQ(*ResolveRegion("", sys.Environment()), "us-west-2");
  EXPECT_EQ(*ResolveRegion("ap-northeast-1", sys.Environment()), "ap-northeast-1");
  sys.vars["AWS_REGION"] = "";  // empty counts as unset
  EXPECT_EQ(*ResolveRegion("", sys.Environment()), "eu-central-1");
}

TEST(ResolveRegionTest, RegionOnlyFromTheConfigFile) {
  FakeSystem sys;
  sys.files["/home/u/.aws/credentials"] = "[default]\nregion = not-here\n";
  StatusOr<std::string> region = ResolveRegion("", sys.Environment());
  ASSERT_FALSE(region.ok());
  EXPECT_EQ(region.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(region.status().message(),
              AllOf(HasSubstr("no AWS region"), HasSubstr("queue.region"), HasSubstr("AWS_REGION"),
                    HasSubstr("profile \"default\""), HasSubstr("/home/u/.aws/config")));
}

TEST(ResolveRegionTest, InvalidRegionAndMalformedConfig) {
  FakeSystem sys;
  sys.vars["AWS_REGION"] = "us east 1";
  StatusOr<std::string> region = ResolveRegion("", sys.Environment());
  ASSERT_FALSE(region.ok());
  EXPECT_THAT(region.status().message(), AllOf(HasSubstr("invalid AWS region"), HasSubstr("AWS_REGION")));

  sys.vars.clear();
  sys.files["/home/u/.aws/config"] = "[default]\nregion\n";
  region = ResolveRegion("", sys.Environment());
  ASSERT_FALSE(region.ok());
  EXPECT_THAT(region.status().message(), HasSubstr("\"/home/u/.aws/config\" line 2"));
  // The config file is not read when the region comes from elsewhere.
  EXPECT_EQ(*ResolveRegion("us-east-1", sys.Environment()), "us-east-1");
}

TEST(ResolveSqsEndpointTest, Precedence) {
  std::map<std::string, std::string> vars;
  GetenvFunction getenv = [&vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
  EXPECT_EQ(ResolveSqsEndpoint("", "us-east-1", getenv), "https://sqs.us-east-1.amazonaws.com");
  EXPECT_EQ(ResolveSqsEndpoint("", "cn-north-1", getenv), "https://sqs.cn-north-1.amazonaws.com.cn");
  vars["AWS_ENDPOINT_URL"] = "http://localhost:4566/";
  EXPECT_EQ(ResolveSqsEndpoint("", "us-east-1", getenv), "http://localhost:4566");
  vars["AWS_ENDPOINT_URL_SQS"] = "http://127.0.0.1:9324";
  EXPECT_EQ(ResolveSqsEndpoint("", "us-east-1", getenv), "http://127.0.0.1:9324");
  EXPECT_EQ(ResolveSqsEndpoint("http://configured:1", "us-east-1", getenv), "http://configured:1");
  vars["AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"] = "TRUE";
  EXPECT_EQ(ResolveSqsEndpoint("", "eu-west-1", getenv), "https://sqs.eu-west-1.amazonaws.com");
  EXPECT_EQ(ResolveSqsEndpoint("http://configured:1", "us-east-1", getenv), "http://configured:1");
  vars["AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"] = "false";
  vars["AWS_ENDPOINT_URL_SQS"] = "";  // empty counts as unset
  EXPECT_EQ(ResolveSqsEndpoint("", "us-east-1", getenv), "http://localhost:4566");
}

}  // namespace
}  // namespace taskpipe
