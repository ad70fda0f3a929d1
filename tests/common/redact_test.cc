#include "common/redact.h"

#include <thread>

#include <gtest/gtest.h>

namespace taskpipe {
namespace {

TEST(RedactTest, RegisteredSecretMaskedEverywhere) {
  Redactor r;
  r.AddSecret("s3cr3t-token-value");
  EXPECT_EQ(r.Redact("a s3cr3t-token-value b s3cr3t-token-value"), "a *** b ***");
}

TEST(RedactTest, ShortSecretsAreNotRegistered) {
  Redactor r;
  r.AddSecret("ab");
  EXPECT_EQ(r.Redact("abc ab"), "abc ab");
}

TEST(RedactTest, LongerSecretMaskedWholeWhenItContainsAnother) {
  Redactor r;
  r.AddSecret("token123");
  r.AddSecret("prefix-token123-suffix");
  EXPECT_EQ(r.Redact("x prefix-token123-suffix y token123"), "x *** y ***");
}

TEST(RedactTest, SlackWebhookUrlWithoutRegistration) {
  EXPECT_EQ(RedactKnownSecrets("posting to https://hooks.slack.com/services/T000/B000/XXXXXXXX failed"),
            "posting to https://hooks.slack.com/*** failed");
}

TEST(RedactTest, DiscordWebhookUrlWithoutRegistration) {
  EXPECT_EQ(RedactKnownSecrets("url=\"https://discord.com/api/v10/webhooks/123456/abcDEF-token?wait=true\""),
            "url=\"https://discord.com/api/v10/webhooks/***\"");
  EXPECT_EQ(RedactKnownSecrets("https://discordapp.com/api/webhooks/1/tok"),
            "https://discordapp.com/api/webhooks/***");
}

TEST(RedactTest, BearerAndAuthorizationHeader) {
  EXPECT_EQ(RedactKnownSecrets("Authorization: Bearer abc.def.ghi\r\nHost: x"),
            "Authorization: ***\r\nHost: x");
  EXPECT_EQ(RedactKnownSecrets("token is Bearer eyJhbGciOi, then"), "token is Bearer ***, then");
  EXPECT_EQ(RedactKnownSecrets("AUTHORIZATION: AWS4-HMAC-SHA256 Credential=AKID/2026, Signature=ff"),
            "AUTHORIZATION: ***");
}

TEST(RedactTest, AwsQueryParametersAndJsonKeys) {
  EXPECT_EQ(RedactKnownSecrets("?X-Amz-Signature=abcdef&X-Amz-Security-Token=FwoG%2Fxyz&Action=Send"),
            "?X-Amz-Signature=***&X-Amz-Security-Token=***&Action=Send");
  EXPECT_EQ(RedactKnownSecrets("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG"), "aws_secret_access_key=***");
  EXPECT_EQ(RedactKnownSecrets(R"({"AccessKeyId":"ASIA","SecretAccessKey": "wJalr/XUt","Token":"FQoG"})"),
            R"({"AccessKeyId":"ASIA","SecretAccessKey": "***","Token":"***"})");
}

TEST(RedactTest, OrdinaryTextUntouched) {
  const std::string text = "consumer: received 10 messages in 3 ms; basic setup done; token count 5";
  EXPECT_EQ(RedactKnownSecrets(text), text);
}

TEST(RedactTest, IdempotentOnRedactedText) {
  std::string once = RedactKnownSecrets("Bearer abc https://hooks.slack.com/services/T/B/C");
  EXPECT_EQ(RedactKnownSecrets(once), once);
}

TEST(RedactUrlTest, KeepsSchemeAndHostOnly) {
  EXPECT_EQ(RedactUrl("https://hooks.slack.com/services/T0/B0/XXXX"), "https://hooks.slack.com/***");
  EXPECT_EQ(RedactUrl("http://127.0.0.1:4566/000000000000/tasks?x=1"), "http://127.0.0.1:4566/***");
  EXPECT_EQ(RedactUrl("https://user:pass@example.com/p"), "https://example.com/***");
  EXPECT_EQ(RedactUrl("https://example.com"), "https://example.com");
  EXPECT_EQ(RedactUrl("https://example.com/"), "https://example.com/");
  EXPECT_EQ(RedactUrl(""), "");
}

TEST(RedactTest, ConcurrentAddAndRedact) {
  Redactor r;
  std::thread adder([&] {
    for (int i = 0; i < 200; ++i) r.AddSecret("secret-number-" + std::to_string(i));
  });
  for (int i = 0; i < 200; ++i) (void)r.Redact("secret-number-5 and more text");
  adder.join();
  EXPECT_EQ(r.Redact("secret-number-5 and more text"), "*** and more text");
}

}  // namespace
}  // namespace taskpipe
