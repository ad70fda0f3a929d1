#!/usr/bin/env python3
"""Signs requests with botocore's SigV4Auth, for tests/aws/sigv4_test.cc to compare against.

stdin: a JSON list of cases, each
  {"method", "url", "headers": [[name, value], ...], "body", "access_key", "secret_key",
   "token" (may be ""), "region", "service", "timestamp" ("20260308T070000Z")}
stdout: a JSON list, one entry per case:
  {"canonical_request", "string_to_sign", "added": [[name, value], ...]}
where "added" lists the headers botocore added or changed (X-Amz-Date, X-Amz-Security-Token,
Authorization), in botocore's order.
Exits non-zero (with the reason on stderr) when botocore is missing: the machine image has it, so
the C++ test must fail rather than skip.
"""
import datetime
import json
import sys
from unittest import mock

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


class RecordingSigV4Auth(SigV4Auth):
    """SigV4Auth that keeps the canonical request and string to sign it computed."""

    def string_to_sign(self, request, canonical_request):
        self.recorded_canonical_request = canonical_request
        self.recorded_string_to_sign = super().string_to_sign(request, canonical_request)
        return self.recorded_string_to_sign


def sign(case):
    headers = {}
    for name, value in case["headers"]:
        if name in headers:
            raise SystemExit("repeated header %r: AWSRequest keeps one value per name" % name)
        headers[name] = value
    request = AWSRequest(method=case["method"], url=case["url"], headers=headers,
                         data=case["body"].encode("utf-8"))
    before = {k: v for k, v in request.headers.items()}
    credentials = Credentials(case["access_key"], case["secret_key"], case["token"] or None)
    auth = RecordingSigV4Auth(credentials, case["service"], case["region"])
    when = datetime.datetime.strptime(case["timestamp"], "%Y%m%dT%H%M%SZ").replace(
        tzinfo=datetime.timezone.utc)
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        auth.add_auth(request)
    added = [[k, v] for k, v in request.headers.items() if before.get(k) != v]
    return {"canonical_request": auth.recorded_canonical_request,
            "string_to_sign": auth.recorded_string_to_sign,
            "added": added}


def main():
    cases = json.load(sys.stdin)
    json.dump([sign(c) for c in cases], sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
