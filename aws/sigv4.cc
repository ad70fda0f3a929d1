// AWS Signature Version 4. The rules followed here are AWS's "Create a signed AWS API request"
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html, formerly
// https://docs.aws.amazon.com/general/latest/gr/sigv4-create-canonical-request.html) as pinned down
// by AWS's SigV4 test suite (https://docs.aws.amazon.com/general/latest/gr/signature-v4-test-suite.html)
// and botocore's SigV4Auth where the prose is vague (which headers are never signed, how the
// path is normalised).
#include "aws/sigv4.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>

namespace taskpipe {
namespace {

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";
constexpr char kHexDigits[] = "0123456789abcdef";
constexpr char kUpperHexDigits[] = "0123456789ABCDEF";

// Headers that are never signed, as botocore's SIGNED_HEADERS_BLACKLIST: hop-by-hop headers and
// ones that proxies and load balancers add or rewrite, so a signature over them would break in
// transit.
constexpr std::array<std::string_view, 11> kUnsignedHeaders = {"connection",
                                                               "expect",
                                                               "keep-alive",
                                                               "proxy-authenticate",
                                                               "proxy-authorization",
                                                               "te",
                                                               "trailer",
                                                               "transfer-encoding",
                                                               "upgrade",
                                                               "user-agent",
                                                               "x-amzn-trace-id"};

std::string HexEncode(const unsigned char* data, std::size_t size) {
  std::string out;
  out.reserve(size * 2);
  for (std::size_t i = 0; i < size; ++i) {
    out.push_back(kHexDigits[data[i] >> 4]);
    out.push_back(kHexDigits[data[i] & 0xF]);
  }
  return out;
}

std::string HexEncode(std::string_view bytes) {
  return HexEncode(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
}

char ToLowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string ToLowerAscii(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ToLowerAscii(c);
  return out;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return ToLowerAscii(x) == ToLowerAscii(y);
         });
}

bool IsAlpha(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// RFC 9110 tchar: the characters of a method or header name.
bool IsTokenChar(char c) {
  return IsAlpha(c) || IsDigit(c) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool IsToken(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), IsTokenChar); }

// Control characters (NUL..US and DEL). A CR or LF in a header value or URL would let the caller's
// data inject headers or requests; HTAB is the one control character a header value may hold.
bool IsControl(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u < 0x20 || u == 0x7F;
}

bool HasControl(std::string_view s, bool allow_tab) {
  return std::any_of(s.begin(), s.end(),
                     [allow_tab](char c) { return IsControl(c) && !(allow_tab && c == '\t'); });
}

bool IsSpaceOrTab(char c) { return c == ' ' || c == '\t'; }

// Trimall: strips leading and trailing spaces and tabs and collapses each inner run to one space.
std::string TrimAll(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  bool pending_space = false;
  for (char c : value) {
    if (IsSpaceOrTab(c)) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.push_back(c);
  }
  return out;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes "%XY" escapes; a "%" not followed by two hex digits stays a literal "%" (and is then
// encoded as "%25"), as a lenient server would read it. "+" is left alone: RFC 3986, not forms.
std::string PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      const int hi = HexValue(s[i + 1]);
      const int lo = HexValue(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

struct ParsedUrl {
  std::string_view scheme;  // "http" or "https", as written
  std::string host_header;  // "host" or "host:port" (port only when not the scheme's default)
  std::string_view path;    // may be empty
  std::string_view query;   // without "?"; may be empty
};

// Splits "http(s)://[userinfo@]host[:port][/path][?query][#fragment]". Lenient about what the
// path and query contain (the test suite's requests hold raw spaces and UTF-8), strict about the
// scheme and authority, and rejects control characters anywhere.
StatusOr<ParsedUrl> ParseUrl(std::string_view url) {
  if (url.empty()) return InvalidArgumentError("url is empty");
  if (HasControl(url, /*allow_tab=*/false)) {
    return InvalidArgumentError("url contains control characters (CR, LF, NUL, ...)");
  }
  const std::size_t colon = url.find("://");
  if (colon == std::string_view::npos) {
    return InvalidArgumentError("url must start with http:// or https://");
  }
  ParsedUrl out;
  out.scheme = url.substr(0, colon);
  int default_port = 0;
  if (EqualsIgnoreCase(out.scheme, "https")) {
    default_port = 443;
  } else if (EqualsIgnoreCase(out.scheme, "http")) {
    default_port = 80;
  } else {
    return InvalidArgumentError("url must start with http:// or https://");
  }
  std::string_view rest = url.substr(colon + 3);
  if (const std::size_t hash = rest.find('#'); hash != std::string_view::npos) rest = rest.substr(0, hash);
  const std::size_t authority_end = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, authority_end);
  std::string_view path_and_query = authority_end == std::string_view::npos ? "" : rest.substr(authority_end);
  if (authority.find('@') != std::string_view::npos) {
    // User info in the URL would be a credential; AWS never uses it.
    return InvalidArgumentError("url must not contain user info (user@host)");
  }
  std::string_view host;
  std::string_view port;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {  // IPv6 literal: "[::1]:4566"
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return InvalidArgumentError("url has an unterminated IPv6 host");
    host = authority.substr(0, close + 1);
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return InvalidArgumentError("url has junk after its IPv6 host");
      has_port = true;
      port = after.substr(1);
    }
    const std::string_view inner = host.substr(1, host.size() - 2);
    if (inner.empty() || !std::all_of(inner.begin(), inner.end(),
                                      [](char c) { return HexValue(c) >= 0 || c == ':' || c == '.'; })) {
      return InvalidArgumentError("url has an invalid IPv6 host");
    }
  } else {
    const std::size_t port_colon = authority.rfind(':');
    host = authority.substr(0, port_colon);
    if (port_colon != std::string_view::npos) {
      has_port = true;
      port = authority.substr(port_colon + 1);
    }
    if (host.empty()) return InvalidArgumentError("url has no host");
    if (!std::all_of(host.begin(), host.end(),
                     [](char c) { return IsAlpha(c) || IsDigit(c) || c == '-' || c == '.' || c == '_'; })) {
      return InvalidArgumentError("url host may contain only letters, digits, '-', '.' and '_'");
    }
  }
  out.host_header = std::string(host);
  // "host:" (an empty port) means the scheme's default port, as in RFC 3986.
  if (has_port && !port.empty()) {
    if (port.size() > 5 || !std::all_of(port.begin(), port.end(), IsDigit)) {
      return InvalidArgumentError("url has an invalid port");
    }
    int number = 0;
    for (char c : port) number = number * 10 + (c - '0');
    if (number < 1 || number > 65535) return InvalidArgumentError("url port is out of range (1-65535)");
    if (number != default_port) out.host_header += ":" + std::to_string(number);
  }
  const std::size_t question = path_and_query.find('?');
  out.path = path_and_query.substr(0, question);
  if (question != std::string_view::npos) out.query = path_and_query.substr(question + 1);
  return out;
}

// Removes "." and ".." segments (RFC 3986 5.2.4) and empty segments, keeping a leading and a
// trailing slash. This is botocore's remove_dot_segments(), which AWS's normalize-path vectors
// pin down: "/example/.." -> "/", "//example//" -> "/example/", "/./" -> "/".
std::string NormalizePath(std::string_view path) {
  if (path.empty()) return "/";
  std::vector<std::string_view> segments;
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    const std::string_view segment = path.substr(start, slash - start);
    if (segment == "..") {
      if (!segments.empty()) segments.pop_back();
    } else if (!segment.empty() && segment != ".") {
      segments.push_back(segment);
    }
    start = slash + 1;
  }
  std::string out;
  if (path.front() == '/') out.push_back('/');
  for (std::size_t i = 0; i < segments.size(); ++i) {
    if (i > 0) out.push_back('/');
    out.append(segments[i]);
  }
  if (path.back() == '/' && !segments.empty()) out.push_back('/');
  return out.empty() ? "/" : out;
}

std::string CanonicalUri(std::string_view path, const SignV4Options& options) {
  std::string normalized = options.normalize_uri_path ? NormalizePath(path) : std::string(path);
  if (normalized.empty()) normalized = "/";
  // The URL's path is encoded once already; encoding it again is the "double encoding" AWS
  // requires of every service but S3 ("/documents and settings/" is sent as
  // "/documents%20and%20settings/" and signed as "/documents%2520and%2520settings/").
  return options.use_double_uri_encode ? UriEncode(normalized, /*encode_slash=*/false) : normalized;
}

std::string CanonicalQuery(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> params;
  std::size_t start = 0;
  while (start <= query.size() && !query.empty()) {
    std::size_t amp = query.find('&', start);
    if (amp == std::string_view::npos) amp = query.size();
    const std::string_view param = query.substr(start, amp - start);
    if (!param.empty()) {
      const std::size_t eq = param.find('=');
      const std::string_view name = param.substr(0, eq);
      const std::string_view value = eq == std::string_view::npos ? std::string_view() : param.substr(eq + 1);
      params.emplace_back(UriEncode(PercentDecode(name), true), UriEncode(PercentDecode(value), true));
    }
    start = amp + 1;
  }
  // Sorted by encoded name, then by encoded value (byte order), as the vectors
  // get-vanilla-query-order-key-case and get-vanilla-query-order-value require.
  std::sort(params.begin(), params.end());
  std::string out;
  for (const auto& [name, value] : params) {
    if (!out.empty()) out.push_back('&');
    out += name;
    out.push_back('=');
    out += value;
  }
  return out;
}

bool IsUnsignedHeader(std::string_view lower_name) {
  return std::find(kUnsignedHeaders.begin(), kUnsignedHeaders.end(), lower_name) != kUnsignedHeaders.end();
}

// Returns the value of header `name` (case-insensitive), or nullptr.
const std::string* FindHeader(const std::vector<std::pair<std::string, std::string>>& headers,
                              std::string_view name) {
  for (const auto& [key, value] : headers) {
    if (EqualsIgnoreCase(key, name)) return &value;
  }
  return nullptr;
}

bool IsScopeComponent(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return IsAlpha(c) || IsDigit(c) || c == '-' || c == '_' || c == '.';
  });
}

}  // namespace

std::string Sha256Hex(std::string_view data) {
  std::array<unsigned char, SHA256_DIGEST_LENGTH> digest{};
  unsigned int size = 0;
  // EVP_Digest with EVP_sha256() cannot fail short of memory exhaustion; an empty result would
  // only make the signature wrong, never unsafe.
  if (EVP_Digest(data.empty() ? "" : data.data(), data.size(), digest.data(), &size, EVP_sha256(), nullptr) !=
      1)
    return "";
  return HexEncode(digest.data(), size);
}

std::string HmacSha256(std::string_view key, std::string_view data) {
  // An empty std::string_view may have a null data(); OpenSSL wants a pointer even for length 0.
  static constexpr unsigned char kEmpty[1] = {0};
  const void* key_ptr = key.empty() ? kEmpty : static_cast<const void*>(key.data());
  const unsigned char* data_ptr = data.empty() ? kEmpty : reinterpret_cast<const unsigned char*>(data.data());
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int size = 0;
  if (HMAC(EVP_sha256(), key_ptr, static_cast<int>(key.size()), data_ptr, data.size(), mac.data(), &size) ==
      nullptr) {
    return "";
  }
  std::string out(reinterpret_cast<const char*>(mac.data()), size);
  OPENSSL_cleanse(mac.data(), mac.size());
  return out;
}

std::string UriEncode(std::string_view text, bool encode_slash) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (IsAlpha(c) || IsDigit(c) || c == '-' || c == '.' || c == '_' || c == '~' ||
        (c == '/' && !encode_slash)) {
      out.push_back(c);
    } else {
      const auto u = static_cast<unsigned char>(c);
      out.push_back('%');
      out.push_back(kUpperHexDigits[u >> 4]);
      out.push_back(kUpperHexDigits[u & 0xF]);
    }
  }
  return out;
}

std::string AmzDate(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  const auto secs = floor<seconds>(t);
  const auto day = floor<days>(secs);
  const year_month_day ymd{day};
  const hh_mm_ss<seconds> hms{secs - day};
  std::array<char, 17> buf{};
  const auto put = [&buf](std::size_t at, unsigned value, std::size_t width) {
    for (std::size_t i = width; i-- > 0;) {
      buf[at + i] = static_cast<char>('0' + value % 10);
      value /= 10;
    }
  };
  // system_clock with nanoseconds spans years 1677-2262, so the year always has four digits.
  put(0, static_cast<unsigned>(static_cast<int>(ymd.year())), 4);
  put(4, static_cast<unsigned>(ymd.month()), 2);
  put(6, static_cast<unsigned>(ymd.day()), 2);
  buf[8] = 'T';
  put(9, static_cast<unsigned>(hms.hours().count()), 2);
  put(11, static_cast<unsigned>(hms.minutes().count()), 2);
  put(13, static_cast<unsigned>(hms.seconds().count()), 2);
  buf[15] = 'Z';
  return std::string(buf.data(), 16);
}

StatusOr<CanonicalRequestResult> CanonicalRequest(const SigningRequest& request,
                                                  const SignV4Options& options) {
  if (!IsToken(request.method))
    return InvalidArgumentError("method must be a non-empty HTTP token, e.g. \"POST\"");
  StatusOr<ParsedUrl> url = ParseUrl(request.url);
  if (!url.ok()) return url.status();

  // Lower-cased name -> values in request order; std::map sorts names bytewise, as SigV4 wants.
  std::map<std::string, std::vector<std::string>> headers;
  for (const auto& [name, value] : request.headers) {
    if (!IsToken(name)) {
      return InvalidArgumentError("header name \"" + std::string(HasControl(name, false) ? "" : name) +
                                  "\" is not an HTTP token");
    }
    if (HasControl(value, /*allow_tab=*/true)) {
      // The name is safe to show; the value may be a secret.
      return InvalidArgumentError("header " + name +
                                  " has control characters (CR, LF, NUL, ...) in its value");
    }
    std::string lower = ToLowerAscii(name);
    if (IsUnsignedHeader(lower)) continue;
    headers[std::move(lower)].push_back(TrimAll(value));
  }
  if (headers.find("host") == headers.end()) headers["host"].push_back(url->host_header);

  CanonicalRequestResult out;
  std::string canonical_headers;
  for (const auto& [name, values] : headers) {
    if (!out.signed_headers.empty()) out.signed_headers.push_back(';');
    out.signed_headers += name;
    canonical_headers += name;
    canonical_headers.push_back(':');
    for (std::size_t i = 0; i < values.size(); ++i) {
      if (i > 0) canonical_headers.push_back(',');
      canonical_headers += values[i];
    }
    canonical_headers.push_back('\n');
  }

  std::string payload_hash;
  if (const auto it = headers.find("x-amz-content-sha256"); it != headers.end() && it->second.size() == 1) {
    payload_hash = it->second.front();
  } else {
    payload_hash = Sha256Hex(request.body);
  }

  std::string& c = out.canonical_request;
  c = request.method;
  c.push_back('\n');
  c += CanonicalUri(url->path, options);
  c.push_back('\n');
  c += CanonicalQuery(url->query);
  c.push_back('\n');
  c += canonical_headers;  // each line ends in "\n", then one blank line
  c.push_back('\n');
  c += out.signed_headers;
  c.push_back('\n');
  c += payload_hash;
  return out;
}

std::string CredentialScope(std::string_view date, std::string_view region, std::string_view service) {
  std::string out(date);
  out.push_back('/');
  out += region;
  out.push_back('/');
  out += service;
  out += "/aws4_request";
  return out;
}

std::string StringToSign(std::string_view amz_date, std::string_view credential_scope,
                         std::string_view canonical_request) {
  std::string out(kAlgorithm);
  out.push_back('\n');
  out += amz_date;
  out.push_back('\n');
  out += credential_scope;
  out.push_back('\n');
  out += Sha256Hex(canonical_request);
  return out;
}

std::string SigningKey(std::string_view secret_access_key, std::string_view date, std::string_view region,
                       std::string_view service) {
  std::string secret = "AWS4";
  secret += secret_access_key;
  std::string k_date = HmacSha256(secret, date);
  std::string k_region = HmacSha256(k_date, region);
  std::string k_service = HmacSha256(k_region, service);
  std::string k_signing = HmacSha256(k_service, "aws4_request");
  // Intermediate keys are as good as the secret for this day, region and service.
  for (std::string* s : {&secret, &k_date, &k_region, &k_service}) OPENSSL_cleanse(s->data(), s->size());
  return k_signing;
}

StatusOr<std::vector<std::pair<std::string, std::string>>> SignV4(
    const SigningRequest& request, const AwsCredentials& creds, std::string_view region,
    std::string_view service, std::chrono::system_clock::time_point now, const SignV4Options& options) {
  if (!IsScopeComponent(region)) {
    return InvalidArgumentError(
        "region must be non-empty and contain only letters, digits, '-', '_' and '.'");
  }
  if (!IsScopeComponent(service)) {
    return InvalidArgumentError(
        "service must be non-empty and contain only letters, digits, '-', '_' and '.'");
  }
  if (creds.access_key_id.empty()) return InvalidArgumentError("AWS credentials have no access key id");
  if (creds.secret_access_key.empty())
    return InvalidArgumentError("AWS credentials have no secret access key");
  // The access key id goes into the Authorization header's Credential=KEY/scope list.
  if (!std::all_of(creds.access_key_id.begin(), creds.access_key_id.end(),
                   [](char c) { return IsAlpha(c) || IsDigit(c) || c == '_' || c == '-' || c == '.'; })) {
    return InvalidArgumentError("AWS access key id may contain only letters, digits, '_', '-' and '.'");
  }
  if (HasControl(creds.session_token, /*allow_tab=*/false) ||
      creds.session_token.find(' ') != std::string::npos) {
    return InvalidArgumentError("AWS session token contains spaces or control characters");
  }
  if (FindHeader(request.headers, "authorization") != nullptr) {
    return InvalidArgumentError(
        "request already has an Authorization header (sign a fresh copy of the request)");
  }

  const std::string amz_date = AmzDate(now);
  const std::string date = amz_date.substr(0, 8);
  std::vector<std::pair<std::string, std::string>> added;         // returned
  std::vector<std::pair<std::string, std::string>> added_signed;  // added and signed

  if (const std::string* existing = FindHeader(request.headers, "x-amz-date")) {
    if (TrimAll(*existing) != amz_date) {
      return InvalidArgumentError(
          "request already has an X-Amz-Date header that differs from the signing time");
    }
  } else {
    added.emplace_back("X-Amz-Date", amz_date);
    added_signed.push_back(added.back());
  }
  if (!creds.session_token.empty()) {
    if (const std::string* existing = FindHeader(request.headers, "x-amz-security-token")) {
      if (*existing != creds.session_token) {
        return InvalidArgumentError(
            "request already has an X-Amz-Security-Token header that differs from the credentials'");
      }
    } else {
      added.emplace_back("X-Amz-Security-Token", creds.session_token);
      if (options.sign_session_token) added_signed.push_back(added.back());
    }
  }
  if (options.add_content_sha256 && FindHeader(request.headers, "x-amz-content-sha256") == nullptr) {
    added.emplace_back("X-Amz-Content-Sha256", Sha256Hex(request.body));
    added_signed.push_back(added.back());
  }

  StatusOr<CanonicalRequestResult> canonical = [&]() -> StatusOr<CanonicalRequestResult> {
    if (added_signed.empty()) return CanonicalRequest(request, options);
    SigningRequest with_added = request;
    with_added.headers.insert(with_added.headers.end(), added_signed.begin(), added_signed.end());
    return CanonicalRequest(with_added, options);
  }();
  if (!canonical.ok()) return canonical.status();

  const std::string scope = CredentialScope(date, region, service);
  const std::string string_to_sign = StringToSign(amz_date, scope, canonical->canonical_request);
  std::string key = SigningKey(creds.secret_access_key, date, region, service);
  const std::string signature = HexEncode(HmacSha256(key, string_to_sign));
  OPENSSL_cleanse(key.data(), key.size());

  std::string authorization(kAlgorithm);
  authorization += " Credential=";
  authorization += creds.access_key_id;
  authorization.push_back('/');
  authorization += scope;
  authorization += ", SignedHeaders=";
  authorization += canonical->signed_headers;
  authorization += ", Signature=";
  authorization += signature;
  added.emplace_back("Authorization", std::move(authorization));
  return added;
}

}  // namespace taskpipe
