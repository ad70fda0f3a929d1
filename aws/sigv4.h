// AWS Signature Version 4 (header form, AWS4-HMAC-SHA256) as pure functions.
//
// SignV4() takes a request as it will be sent, the credentials, region, service and the signing
// instant, and returns the headers to add (Authorization, X-Amz-Date, ...). No clock, no I/O: the
// same input always gives the same output, so it is checked byte-for-byte against AWS's published
// SigV4 test suite and against botocore (tests/aws/sigv4_test.cc).
//
// The pieces (canonical request, string to sign, signing key) are exposed for tests and for
// debugging a SignatureDoesNotMatch: AWS's error response carries its own canonical request and
// string to sign, which can be diffed against CanonicalRequest() and StringToSign().
// Reference: https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html
//
// All functions are thread-safe (no shared state). Error messages never contain the secret access
// key, the session token or header values.
#ifndef TASKPIPE_AWS_SIGV4_H_
#define TASKPIPE_AWS_SIGV4_H_

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace taskpipe {

struct AwsCredentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // optional: temporary credentials (STS) only
};

// What is signed.
struct SigningRequest {
  std::string method;  // "POST"; used as given (HTTP methods are case-sensitive)
  // The URL as it goes on the wire: "https://sqs.us-east-1.amazonaws.com/123/q?Action=...".
  // The path and query should already be percent-encoded (UriEncode()); see CanonicalRequest()
  // for how they are canonicalised. A fragment ("#...") is ignored: it is never sent.
  std::string url;
  // Headers as they will be sent, in order. Several entries with the same name are allowed (their
  // values are joined with ","). When no Host header is present, the host is derived from `url`
  // the way curl and botocore send it: "host" or "host:port" when the port is not the scheme's
  // default; the case is kept as written in the URL.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // the payload, hashed into the signature
};

struct SignV4Options {
  // Adds X-Amz-Content-Sha256 (the payload hash) and signs it. S3 requires it; SQS does not, and
  // botocore's SigV4Auth does not add it.
  bool add_content_sha256 = false;
  // Whether X-Amz-Security-Token (added when the credentials carry a session token) is one of the
  // signed headers. botocore signs it, and so does AWS's vector "post-sts-header-before"; false
  // adds it after signing ("post-sts-header-after").
  bool sign_session_token = true;
  // Canonical URI rules. Every service but S3 removes "." and ".." segments and empty segments
  // ("//") and URI-encodes the path once more (the path in the URL is already encoded once, so the
  // canonical URI is encoded twice). S3 uses the URL's path as it is: set both to false.
  // The names are those of aws-c-auth's signing config.
  bool normalize_uri_path = true;
  bool use_double_uri_encode = true;
};

// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(std::string_view data);

// The raw 32-byte HMAC-SHA256 of `data` under `key`.
std::string HmacSha256(std::string_view key, std::string_view data);

// SigV4's UriEncode(): every byte except the unreserved characters A-Z a-z 0-9 - . _ ~ becomes
// "%XY" (upper-case hex); "/" is kept as is unless `encode_slash`. Works on bytes: UTF-8 text
// becomes one escape per byte ("ሴ" -> "%E1%88%B4").
std::string UriEncode(std::string_view text, bool encode_slash);

// "20150830T123600Z": the X-Amz-Date form of `t` (UTC, whole seconds, rounding toward the past).
std::string AmzDate(std::chrono::system_clock::time_point t);

struct CanonicalRequestResult {
  std::string canonical_request;  // the text whose SHA-256 goes into the string to sign
  std::string signed_headers;     // "host;x-amz-date": the SignedHeaders list
};

// The canonical request of `request`, exactly as it is: every header present is signed (except
// the ones proxies may change, as botocore: User-Agent, Expect, X-Amzn-Trace-Id and hop-by-hop
// headers), plus Host derived from the URL when absent. SignV4() calls this after adding
// X-Amz-Date and the other headers it signs.
//  - Canonical URI: the URL's path ("/" when empty), normalised and encoded per `options`.
//  - Canonical query: each "&"-separated parameter is split at the first "=", percent-decoded,
//    UriEncode()d with "/" encoded, sorted by name then value, joined as "name=value" (an empty
//    value gives "name="). Empty parameters ("a=1&&b=2") are dropped. "+" is a literal plus sign,
//    not a space: encode spaces as "%20".
//  - Canonical headers: names lower-cased, values trimmed with runs of spaces and tabs collapsed
//    to one space, repeated names joined with "," in request order, sorted by name.
//  - Payload hash: the value of an X-Amz-Content-Sha256 header when present (so
//    "UNSIGNED-PAYLOAD" works), else Sha256Hex(body).
// Errors (InvalidArgument): a URL that is not "http(s)://host[:port]...", a method or header name
// that is not an HTTP token, a header value or URL with control characters (CR, LF, NUL, ...).
StatusOr<CanonicalRequestResult> CanonicalRequest(const SigningRequest& request,
                                                  const SignV4Options& options = {});

// "20150830/us-east-1/service/aws4_request". `date` is "yyyymmdd".
std::string CredentialScope(std::string_view date, std::string_view region, std::string_view service);

// "AWS4-HMAC-SHA256\n<amz_date>\n<credential_scope>\n<hex sha256 of canonical_request>".
std::string StringToSign(std::string_view amz_date, std::string_view credential_scope,
                         std::string_view canonical_request);

// The raw 32-byte signing key: HMAC chain "AWS4"+secret -> date (yyyymmdd) -> region -> service
// -> "aws4_request".
std::string SigningKey(std::string_view secret_access_key, std::string_view date, std::string_view region,
                       std::string_view service);

// Signs `request` at instant `now` and returns the headers to add to it, in this order:
// X-Amz-Date, X-Amz-Security-Token (when creds.session_token is not empty),
// X-Amz-Content-Sha256 (when options.add_content_sha256), Authorization.
// A header the request already carries with the same value is not returned again (so a request
// from AWS's test suite, which has X-Amz-Date in it, signs as is).
// Errors (InvalidArgument): everything CanonicalRequest() rejects; an empty or malformed region or
// service; a missing access key id or secret access key; an access key id or session token with
// characters that cannot go into a header; a request that already has an Authorization header,
// or an X-Amz-Date / X-Amz-Security-Token that differs from the one this signature needs.
StatusOr<std::vector<std::pair<std::string, std::string>>> SignV4(
    const SigningRequest& request, const AwsCredentials& creds, std::string_view region,
    std::string_view service, std::chrono::system_clock::time_point now, const SignV4Options& options = {});

}  // namespace taskpipe

#endif  // TASKPIPE_AWS_SIGV4_H_
