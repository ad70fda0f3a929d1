// The peer for bench/peer_bench.sh: an sqs-consumer Consumer as its README shows it, with a no-op
// handler, so that what is measured is sqs-consumer + the AWS SDK for JavaScript v3 on Node.
//
//   node bench/peer_consumer.mjs --prefix DIR --queue-url URL --endpoint http://127.0.0.1:PORT
//                                [--batch-size 10] [--wait-time 20] [--handler message|batch]
//                                [--ready-file FILE]
//
// --prefix: the `npm install --prefix DIR sqs-consumer@V @aws-sdk/client-sqs@V` folder (both are
// loaded from there). The SQS client talks to --endpoint (the counting proxy) with dummy
// credentials, region us-east-1, and otherwise the SDK's defaults (JSON protocol, MD5 checks of
// received bodies, standard retries).
//
// The handler is `handleMessage: async (message) => message`, the common usage (one message per
// call; the Consumer runs the messages of one receive concurrently, then polls again). sqs-consumer
// 15 deletes a message only when handleMessage returns it (or an object with its MessageId), so
// the no-op returns the message; each is then deleted with its own DeleteMessage request, which is
// what handleMessage does (handleMessageBatch would use DeleteMessageBatch, but is the less common
// way to write a consumer; --handler batch runs `handleMessageBatch: async (ms) => ms` instead, for
// comparison). Everything else is sqs-consumer's default (no attribute names asked,
// no visibility timeout given: the queue's; pollingWaitTimeMs 0).
//
// When the Consumer has started, writes {"pid": P} to --ready-file (through a temporary name).
// On SIGTERM/SIGINT: consumer.stop({abort: true}) (the pending long poll is cut short), then prints
// one JSON line {"handled": N, "processed": N, "errors": N, "error_samples": [...]} to stdout and
// exits 0: handled = messages given to the handler, processed = messages deleted ("message_processed"),
// errors = "error"/"processing_error"/"timeout_error" events while running (the abort's own
// error is not counted).
import { renameSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";

const { values: args } = parseArgs({
  options: {
    prefix: { type: "string" },
    "queue-url": { type: "string" },
    endpoint: { type: "string" },
    "batch-size": { type: "string", default: "10" },
    "wait-time": { type: "string", default: "20" },
    handler: { type: "string", default: "message" },
    "ready-file": { type: "string" },
  },
});
for (const name of ["prefix", "queue-url", "endpoint"]) {
  if (!args[name]) {
    console.error(`peer_consumer: --${name} is required`);
    process.exit(2);
  }
}

if (args.handler !== "message" && args.handler !== "batch") {
  console.error(`peer_consumer: --handler is "message" or "batch", got "${args.handler}"`);
  process.exit(2);
}

// Both packages live outside any node_modules this script can resolve from: load them with a
// require() rooted in that folder (sqs-consumer's CommonJS build, which requires the same
// @aws-sdk/client-sqs, so there is one copy of the SDK).
const require = createRequire(join(resolve(args.prefix), "package.json"));
const { Consumer } = require("sqs-consumer");
const { SQSClient } = require("@aws-sdk/client-sqs");

const sqs = new SQSClient({
  region: "us-east-1",
  endpoint: args.endpoint,
  credentials: { accessKeyId: "testing", secretAccessKey: "testing" },
});

let handled = 0;
let processed = 0;
let errors = 0;
let stopping = false;
const errorSamples = [];
function onError(kind) {
  return (err) => {
    if (stopping) return;
    errors += 1;
    if (errorSamples.length < 5) errorSamples.push(`${kind}: ${err?.name}: ${err?.message}`);
  };
}

const handlers =
  args.handler === "message"
    ? {
        handleMessage: async (message) => {
          handled += 1;
          return message;
        },
      }
    : {
        handleMessageBatch: async (messages) => {
          handled += messages.length;
          return messages;
        },
      };
const consumer = Consumer.create({
  queueUrl: args["queue-url"],
  sqs,
  batchSize: Number(args["batch-size"]),
  waitTimeSeconds: Number(args["wait-time"]),
  ...handlers,
});
consumer.on("message_processed", () => {
  processed += 1;
});
consumer.on("error", onError("error"));
consumer.on("processing_error", onError("processing_error"));
consumer.on("timeout_error", onError("timeout_error"));

function finish() {
  console.log(JSON.stringify({ handled, processed, errors, error_samples: errorSamples }));
  process.exit(0);
}
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    consumer.once("stopped", finish);
    consumer.stop({ abort: true });
    setTimeout(finish, 5000).unref();
  });
}

consumer.once("started", () => {
  if (args["ready-file"]) {
    writeFileSync(args["ready-file"] + ".tmp", JSON.stringify({ pid: process.pid }) + "\n");
    renameSync(args["ready-file"] + ".tmp", args["ready-file"]);
  }
});
consumer.start();
