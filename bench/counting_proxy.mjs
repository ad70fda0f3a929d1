// A counting HTTP proxy for bench/sqs_bench.sh: forwards every request to an SQS server (fauxqs)
// unchanged, Host header included, and counts the SQS JSON-protocol requests by action
// (X-Amz-Target "AmazonSQS.<Action>") at the HTTP layer, which is what a real SQS bill counts.
//
//   node bench/counting_proxy.mjs --upstream 127.0.0.1:PORT [--port N] [--ready-file FILE]
//
// Listens on 127.0.0.1 (--port 0, the default, takes a free port); when listening writes
// {"port": N, "pid": P} to --ready-file and stdout. Control endpoints (never forwarded):
//   GET  /__counts             {"actions": {Action: {requests, entries, errors, aborted, messages, empty}},
//                               "total": N, "errors": [first 20 non-2xx exchanges]}
//        /__counts?times=1     adds "receive_times": start of every ReceiveMessage, ms since epoch
//   GET  /__samples            the first request and response body seen for each action
//   POST /__reset              zeroes everything
// Per action: `entries` = Entries in the request (batch actions), `messages` = Messages returned
// (ReceiveMessage), `empty` = receives that returned none, `errors` = non-2xx responses,
// `aborted` = requests the client hung up on before the answer (a long poll cut short on shutdown).
import http from "node:http";
import { renameSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";

const { values: args } = parseArgs({
  options: {
    upstream: { type: "string" },
    port: { type: "string", default: "0" },
    "ready-file": { type: "string" },
  },
});
if (!args.upstream || !/^[^:]+:\d+$/.test(args.upstream)) {
  console.error("counting_proxy: --upstream HOST:PORT is required");
  process.exit(2);
}
const [upstreamHost, upstreamPort] = args.upstream.split(":");
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });

let state;
function reset() {
  state = { actions: {}, total: 0, errors: [], receiveTimes: [], samples: {} };
}
reset();

function actionOf(req) {
  const target = req.headers["x-amz-target"];
  if (typeof target === "string" && target.length > 0) return target.replace(/^AmazonSQS\./, "");
  return `(no X-Amz-Target: ${req.method} ${req.url})`;
}

function parseJson(buffer) {
  try {
    return JSON.parse(buffer.toString("utf8"));
  } catch {
    return undefined;
  }
}

function countsFor(action) {
  return (state.actions[action] ??= { requests: 0, entries: 0, errors: 0, aborted: 0, messages: 0, empty: 0 });
}

function record(action, status, requestBody, responseBody) {
  const counts = countsFor(action);
  counts.requests += 1;
  const request = parseJson(requestBody);
  if (Array.isArray(request?.Entries)) counts.entries += request.Entries.length;
  const ok = status >= 200 && status < 300;
  if (!ok) {
    counts.errors += 1;
    if (state.errors.length < 20) {
      state.errors.push({
        action,
        status,
        request: requestBody.toString("utf8").slice(0, 4000),
        response: responseBody.toString("utf8").slice(0, 4000),
      });
    }
  } else if (action === "ReceiveMessage") {
    const n = parseJson(responseBody)?.Messages?.length ?? 0;
    counts.messages += n;
    if (n === 0) counts.empty += 1;
  }
  if (!state.samples[action]) {
    state.samples[action] = {
      status,
      request: requestBody.toString("utf8").slice(0, 8000),
      response: responseBody.toString("utf8").slice(0, 8000),
    };
  }
}

const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade", "te"]);
function endToEnd(headers) {
  const out = {};
  for (const [name, value] of Object.entries(headers)) if (!HOP_BY_HOP.has(name.toLowerCase())) out[name] = value;
  return out;
}

function reply(res, status, body) {
  const text = JSON.stringify(body, null, 1);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://proxy");
  if (url.pathname === "/__counts" && req.method === "GET") {
    const body = { actions: state.actions, total: state.total, errors: state.errors };
    if (url.searchParams.get("times")) body.receive_times = state.receiveTimes;
    return reply(res, 200, body);
  }
  if (url.pathname === "/__samples" && req.method === "GET") return reply(res, 200, state.samples);
  if (url.pathname === "/__reset" && req.method === "POST") {
    reset();
    return reply(res, 200, { reset: true });
  }

  const action = actionOf(req);
  const started = Date.now();
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    const requestBody = Buffer.concat(chunks);
    // Counted when the request arrives, so that a long poll cut short by the client still counts.
    state.total += 1;
    if (action === "ReceiveMessage") state.receiveTimes.push(started);
    let clientGone = false;
    const headers = endToEnd(req.headers);
    headers["content-length"] = String(requestBody.length);
    const upstream = http.request(
      { host: upstreamHost, port: Number(upstreamPort), method: req.method, path: req.url, headers, agent },
      (upRes) => {
        const out = [];
        upRes.on("data", (chunk) => out.push(chunk));
        upRes.on("end", () => {
          const responseBody = Buffer.concat(out);
          record(action, upRes.statusCode, requestBody, responseBody);
          if (res.destroyed) return;
          const responseHeaders = endToEnd(upRes.headers);
          responseHeaders["content-length"] = String(responseBody.length);
          res.writeHead(upRes.statusCode, upRes.statusMessage, responseHeaders);
          res.end(responseBody);
        });
      },
    );
    upstream.on("error", (err) => {
      if (clientGone) {
        // Our own destroy() below: the client hung up first (not the server's fault).
        const counts = countsFor(action);
        counts.requests += 1;
        counts.aborted += 1;
        return;
      }
      record(action, 502, requestBody, Buffer.from(`proxy: upstream error: ${err.message}`));
      if (!res.headersSent && !res.destroyed) {
        res.writeHead(502, { "content-type": "text/plain" });
        res.end(`proxy: upstream error: ${err.message}`);
      }
    });
    // The client went away (e.g. a consumer stopping mid long poll): drop the upstream request too.
    res.on("close", () => {
      if (res.writableFinished) return;
      clientGone = true;
      upstream.destroy();
    });
    upstream.end(requestBody);
  });
});
// Long polls last up to 20 s and clients keep connections idle between them: be generous.
server.keepAliveTimeout = 120_000;
server.headersTimeout = 125_000;
server.requestTimeout = 0;

server.listen(Number(args.port), "127.0.0.1", () => {
  const line = JSON.stringify({ port: server.address().port, pid: process.pid });
  if (args["ready-file"]) {
    writeFileSync(args["ready-file"] + ".tmp", line + "\n");
    renameSync(args["ready-file"] + ".tmp", args["ready-file"]);
  }
  console.log(line);
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
