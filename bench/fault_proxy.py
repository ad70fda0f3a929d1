#!/usr/bin/env python3
"""A fault-injecting HTTP/1.1 proxy between taskpipe and an SQS server (moto), for the fault
benchmark (bench/fault_bench.sh) and the fault tests (tests/app/fault_cli_test.cc).

  python3 bench/fault_proxy.py --upstream HOST:PORT [--listen-port 0] [--ready-file FILE]
      [--rate 0.10] [--mix KIND=WEIGHT,...] [--after 0.5] [--seed N] [--stall-seconds 2]
      [--actions Action,...] [--verbose]

Listens on 127.0.0.1 (--listen-port 0 takes a free port); when listening prints {"port": N, "pid": P}
on stdout and writes it to --ready-file (atomically). Python 3 standard library only; one thread per
client connection, each with its own keep-alive connection upstream.

Every SQS request (not the control endpoints) draws from one RNG seeded with --seed: with
probability --rate it is faulted, the kind chosen by the --mix weights, and with probability --after
the fault happens after forwarding (the server did the work and the reply is lost or replaced: this
is what creates duplicates), otherwise before (the request never reaches the server). Kinds:
  error500   HTTP 500, SQS error InternalError (JSON: __type + x-amzn-query-error; Query: XML)
  error503   HTTP 503, SQS error ServiceUnavailable
  throttle   SQS throttling as SQS answers it: RequestThrottled, a Sender fault. JSON protocol: HTTP
             400, {"__type": "com.amazonaws.sqs#RequestThrottled", "message": ...} and
             x-amzn-query-error: RequestThrottled;Sender (botocore's SQS model has RequestThrottled
             with no explicit status, i.e. 400). Query protocol: HTTP 403 with
             <ErrorResponse><Error><Type>Sender</Type><Code>RequestThrottled</Code>, as SQS's XML
             API returned it (e.g. vectordotdev/vector#9005, erlcloud/erlcloud#686). Always
             "before": SQS refuses a throttled request without doing it.
  reset      the connection is reset (SO_LINGER 0, then close: the client sees ECONNRESET)
  stall      nothing is answered for --stall-seconds (0 = until the client gives up), then the
             connection is closed
  truncate   the response's headers announce Content-Length larger than the bytes sent; the
             connection is closed after part of the body
--actions limits faults to the listed actions (e.g. DeleteMessageBatch); other requests pass.

Control endpoints (never forwarded, never faulted):
  GET  /__stats   {"requests", "forwarded", "faulted", "faults": {kind: {"before": n, "after": n}},
                   "actions": {Action: {"requests": n, "faults": n}}, "upstream_errors": n}
  POST /__reset   zeroes the counts (the RNG goes on)
Logs nothing per request unless --verbose (then one line per fault on stderr).
"""
import argparse
import http.client
import json
import os
import random
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse

KINDS = ("error500", "error503", "throttle", "reset", "stall", "truncate")
DEFAULT_MIX = "error500=1,error503=1,throttle=1,reset=1,stall=1,truncate=1"
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
              "content-length", "expect"}
MAX_HEADER_BYTES = 64 * 1024


class ClientGone(Exception):
    """The client closed the connection (or sent something that is not HTTP)."""


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.requests = 0
        self.forwarded = 0
        self.upstream_errors = 0
        self.faults = {kind: {"before": 0, "after": 0} for kind in KINDS}
        self.actions = {}

    def snapshot(self):
        faulted = sum(f["before"] + f["after"] for f in self.faults.values())
        return {"requests": self.requests, "forwarded": self.forwarded, "faulted": faulted,
                "faults": self.faults, "actions": self.actions, "upstream_errors": self.upstream_errors}


class FaultPlan:
    """Decides, from one seeded RNG, which requests are faulted and how. Thread-safe."""

    def __init__(self, rate, mix, after, seed, actions):
        self.rate = rate
        self.kinds = [k for k, w in mix if w > 0]
        self.weights = [w for _, w in mix if w > 0]
        self.after = after
        self.actions = actions
        self.random = random.Random(seed)
        self.lock = threading.Lock()

    def draw(self, action):
        """Returns None (forward untouched) or (kind, "before" | "after")."""
        with self.lock:
            # Every request draws the same three numbers, so that a given seed gives the same
            # sequence of decisions whatever the kinds chosen.
            hit, pick, phase = self.random.random(), self.random.random(), self.random.random()
        if self.actions and action not in self.actions:
            return None
        if hit >= self.rate or not self.kinds:
            return None
        total = sum(self.weights)
        x = pick * total
        kind = self.kinds[-1]
        for k, w in zip(self.kinds, self.weights):
            if x < w:
                kind = k
                break
            x -= w
        # A throttled request is refused before the service does anything: never "after".
        return kind, ("after" if phase < self.after and kind != "throttle" else "before")


def parse_mix(text):
    mix = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, sep, weight = item.partition("=")
        if name not in KINDS:
            raise argparse.ArgumentTypeError(f"unknown fault kind {name!r} (kinds: {', '.join(KINDS)})")
        try:
            value = float(weight) if sep else 1.0
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad weight {weight!r} for {name}") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"negative weight for {name}")
        mix.append((name, value))
    if not mix:
        raise argparse.ArgumentTypeError("empty --mix")
    return mix


def parse_rate(text):
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


class Request:
    def __init__(self, method, target, version, headers, body):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers  # list of (name, value), as received
        self.body = body

    def header(self, name):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def keep_alive(self):
        connection = (self.header("connection") or "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection

    def json_protocol(self):
        return self.header("x-amz-target") is not None or "json" in (self.header("content-type") or "")

    def action(self):
        target = self.header("x-amz-target")
        if target:
            return target.rsplit(".", 1)[-1]
        if b"Action=" in self.body:
            values = urllib.parse.parse_qs(self.body.decode("utf-8", "replace")).get("Action")
            if values:
                return values[0]
        query = urllib.parse.urlsplit(self.target).query
        values = urllib.parse.parse_qs(query).get("Action")
        return values[0] if values else "(unknown)"


class Connection:
    """One client connection: reads requests, forwards or faults them, until either side closes."""

    def __init__(self, server, sock):
        self.server = server
        self.sock = sock
        self.buffer = b""
        self.upstream = None

    # --- reading from the client ---------------------------------------------------------------
    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise ClientGone()
        self.buffer += data

    def _read_exact(self, n):
        while len(self.buffer) < n:
            self._fill()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def _read_line(self):
        while b"\r\n" not in self.buffer:
            if len(self.buffer) > MAX_HEADER_BYTES:
                raise ClientGone()
            self._fill()
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def read_request(self):
        while b"\r\n\r\n" not in self.buffer:
            if len(self.buffer) > MAX_HEADER_BYTES:
                raise ClientGone()
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            raise ClientGone()
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise ClientGone()
            headers.append((name.strip(), value.strip()))
        request = Request(parts[0], parts[1], parts[2], headers, b"")
        if (request.header("expect") or "").lower() == "100-continue":
            self.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in (request.header("transfer-encoding") or "").lower():
            body = []
            while True:
                size = int(self._read_line().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self._read_line():  # trailers, up to the blank line
                        pass
                    break
                body.append(self._read_exact(size))
                self._read_exact(2)
            request.body = b"".join(body)
        else:
            request.body = self._read_exact(int(request.header("content-length") or 0))
        return request

    # --- writing to the client -----------------------------------------------------------------
    def send_response(self, status, reason, headers, body, keep_alive, content_length=None):
        lines = [f"HTTP/1.1 {status} {reason}"]
        lines += [f"{k}: {v}" for k, v in headers if k.lower() not in HOP_BY_HOP]
        lines.append(f"Content-Length: {len(body) if content_length is None else content_length}")
        lines.append("Connection: " + ("keep-alive" if keep_alive else "close"))
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    def send_json(self, status, value):
        self.send_response(status, "OK" if status == 200 else "Error", [("Content-Type", "application/json")],
                           json.dumps(value).encode(), keep_alive=True)

    def reset(self):
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.sock.close()

    def stall(self):
        """Answers nothing for --stall-seconds (0: until the client gives up), then closes."""
        seconds = self.server.args.stall_seconds
        deadline = None if seconds <= 0 else time.monotonic() + seconds
        self.sock.settimeout(0.2)
        try:
            while deadline is None or time.monotonic() < deadline:
                try:
                    if not self.sock.recv(65536):
                        break  # the client gave up
                except socket.timeout:
                    continue
        except OSError:
            pass
        self.sock.close()

    # --- the server ----------------------------------------------------------------------------
    def forward(self, request):
        """Sends the request upstream; returns (status, reason, headers, body) or None on failure."""
        headers = {}
        for k, v in request.headers:
            if k.lower() not in HOP_BY_HOP:
                headers[k] = v
        for attempt in range(2):  # a kept-alive upstream connection the server closed: reconnect once
            if self.upstream is None:
                host, port = self.server.args.upstream
                self.upstream = http.client.HTTPConnection(host, port, timeout=120)
            try:
                self.upstream.request(request.method, request.target, body=request.body, headers=headers)
                response = self.upstream.getresponse()
                body = response.read()
                if response.will_close:
                    self.upstream.close()
                    self.upstream = None
                return response.status, response.reason, response.getheaders(), body
            except (OSError, http.client.HTTPException):
                self.upstream.close()
                self.upstream = None
                if attempt == 1:
                    return None
        return None

    def sqs_error(self, request, status, code, message, sender):
        if request.json_protocol():
            body = json.dumps({"__type": "com.amazonaws.sqs#" + code, "message": message}).encode()
            headers = [("Content-Type", "application/x-amz-json-1.0"),
                       ("x-amzn-query-error", f"{code};{'Sender' if sender else 'Receiver'}"),
                       ("x-amzn-RequestId", "fault-proxy")]
        else:
            body = ('<?xml version="1.0"?><ErrorResponse xmlns="http://queue.amazonaws.com/doc/2012-11-05/">'
                    f"<Error><Type>{'Sender' if sender else 'Receiver'}</Type><Code>{code}</Code>"
                    f"<Message>{message}</Message><Detail/></Error><RequestId>fault-proxy</RequestId>"
                    "</ErrorResponse>").encode()
            headers = [("Content-Type", "text/xml")]
        reason = {400: "Bad Request", 403: "Forbidden", 500: "Internal Server Error", 503: "Service Unavailable"}
        self.send_response(status, reason.get(status, "Error"), headers, body, keep_alive=True)

    def apply(self, kind, request, response):
        """Performs a fault; returns False when the connection is finished."""
        if kind == "error500":
            self.sqs_error(request, 500, "InternalError", "injected by fault_proxy", sender=False)
        elif kind == "error503":
            self.sqs_error(request, 503, "ServiceUnavailable", "injected by fault_proxy", sender=False)
        elif kind == "throttle":
            if request.json_protocol():
                self.sqs_error(request, 400, "RequestThrottled", "Request is throttled.", sender=True)
            else:
                self.sqs_error(request, 403, "RequestThrottled", "Request is throttled.", sender=True)
        elif kind == "reset":
            self.reset()
            return False
        elif kind == "stall":
            self.stall()
            return False
        elif kind == "truncate":
            if response is None:  # before forwarding: truncate an error the client would have parsed
                status, reason, headers = 500, "Internal Server Error", [("Content-Type", "application/x-amz-json-1.0")]
                body = json.dumps({"__type": "com.amazonaws.sqs#InternalError", "message": "x" * 200}).encode()
            else:
                status, reason, headers, body = response
            self.send_response(status, reason, headers, body[: len(body) // 2], keep_alive=False,
                               content_length=len(body) + 100)
            self.sock.close()
            return False
        return True

    def handle_control(self, request):
        path = urllib.parse.urlsplit(request.target).path
        stats = self.server.stats
        if path == "/__stats" and request.method == "GET":
            with stats.lock:
                snapshot = json.loads(json.dumps(stats.snapshot()))
            self.send_json(200, snapshot)
        elif path == "/__reset" and request.method == "POST":
            with stats.lock:
                stats.reset()
            self.send_json(200, {"reset": True})
        else:
            self.send_json(404, {"error": "unknown control endpoint " + path})

    def run(self):
        try:
            while True:
                request = self.read_request()
                if request.target.startswith("/__"):
                    self.handle_control(request)
                    continue
                action = request.action()
                stats = self.server.stats
                decision = self.server.plan.draw(action)
                with stats.lock:
                    stats.requests += 1
                    entry = stats.actions.setdefault(action, {"requests": 0, "faults": 0})
                    entry["requests"] += 1
                    if decision:
                        entry["faults"] += 1
                        stats.faults[decision[0]][decision[1]] += 1
                if decision and self.server.args.verbose:
                    print(f"fault_proxy: {action}: {decision[0]} {decision[1]} forwarding", file=sys.stderr, flush=True)
                if decision and decision[1] == "before":
                    if not self.apply(decision[0], request, None):
                        return
                    if not request.keep_alive():
                        return
                    continue
                response = self.forward(request)
                with stats.lock:
                    if response is None:
                        stats.upstream_errors += 1
                    else:
                        stats.forwarded += 1
                if response is None:
                    self.send_response(502, "Bad Gateway", [("Content-Type", "text/plain")],
                                       b"fault_proxy: the upstream server did not answer", keep_alive=False)
                    return
                if decision:
                    if not self.apply(decision[0], request, response):
                        return
                else:
                    status, reason, headers, body = response
                    self.send_response(status, reason, headers, body, keep_alive=request.keep_alive())
                if not request.keep_alive():
                    return
        except (ClientGone, OSError, ValueError):
            pass
        finally:
            if self.upstream is not None:
                self.upstream.close()
            try:
                self.sock.close()
            except OSError:
                pass


class Server:
    def __init__(self, args):
        self.args = args
        self.stats = Stats()
        self.plan = FaultPlan(args.rate, args.mix, args.after, args.seed, set(args.actions))
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", args.listen_port))
        self.listener.listen(128)

    def serve(self):
        while True:
            sock, _ = self.listener.accept()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=Connection(self, sock).run, daemon=True).start()


def parse_upstream(text):
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def main():
    parser = argparse.ArgumentParser(description="Fault-injecting HTTP proxy for SQS (see the module docstring).")
    parser.add_argument("--upstream", type=parse_upstream, required=True, help="HOST:PORT of the SQS server")
    parser.add_argument("--listen-port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--ready-file", help="where to write {\"port\": N, \"pid\": P} once listening")
    parser.add_argument("--rate", type=parse_rate, default=0.10, help="fraction of requests faulted")
    parser.add_argument("--mix", type=parse_mix, default=parse_mix(DEFAULT_MIX),
                        help="weights of the fault kinds, e.g. reset=2,stall=1 (default: all equal)")
    parser.add_argument("--after", type=parse_rate, default=0.5,
                        help="fraction of faults applied after forwarding (the server did the work)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--stall-seconds", type=float, default=2.0, help="0: stall until the client gives up")
    parser.add_argument("--actions", type=lambda s: [a for a in s.split(",") if a], default=[],
                        help="fault only these actions (comma-separated); default: all")
    parser.add_argument("--verbose", action="store_true", help="one line on stderr per fault")
    args = parser.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    server = Server(args)
    ready = json.dumps({"port": server.listener.getsockname()[1], "pid": os.getpid()})
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(ready + "\n")
        os.rename(tmp, args.ready_file)
    print(ready, flush=True)
    try:
        server.serve()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
