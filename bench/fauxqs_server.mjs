// Starts the fauxqs SQS emulator (npm package, JSON protocol only) on 127.0.0.1 for
// bench/sqs_bench.sh. fauxqs's own launcher (startFauxqs / its `fauxqs` bin) listens on 0.0.0.0,
// so this builds the Fastify app with buildApp() and listens on loopback itself.
//
//   node bench/fauxqs_server.mjs --prefix DIR [--port N] [--ready-file FILE]
//
// --prefix: the `npm install --prefix DIR fauxqs@1.9.2` folder. --port 0 (the default) takes a
// free port. When listening, writes {"port": N, "pid": P} to --ready-file (through a temporary
// name, so a reader never sees half of it) and the same line to stdout. SIGTERM/SIGINT close it.
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const { values: args } = parseArgs({
  options: {
    prefix: { type: "string" },
    port: { type: "string", default: "0" },
    "ready-file": { type: "string" },
  },
});
if (!args.prefix) {
  console.error("fauxqs_server: --prefix DIR (the npm install --prefix folder) is required");
  process.exit(2);
}

// fauxqs is ESM-only ("exports": {".": {"import": ...}}) and lives outside any node_modules this
// script can resolve from, so import its entry point by path, as its package.json names it.
const packageDir = join(args.prefix, "node_modules", "fauxqs");
const pkg = JSON.parse(readFileSync(join(packageDir, "package.json"), "utf8"));
const entry = pkg.exports?.["."]?.import?.default ?? pkg.main;
const { buildApp } = await import(pathToFileURL(join(packageDir, entry)).href);

// Queue URLs take the Host of the CreateQueue request (no `host` option), so a queue created
// through the counting proxy has the proxy's address in its URL; fauxqs looks queues up by the
// whole URL string, whichever port the request arrives on.
const app = buildApp({ logger: false });
const address = await app.listen({ host: "127.0.0.1", port: Number(args.port) });
const port = Number(new URL(address).port);

const line = JSON.stringify({ port, pid: process.pid, version: pkg.version });
if (args["ready-file"]) {
  writeFileSync(args["ready-file"] + ".tmp", line + "\n");
  renameSync(args["ready-file"] + ".tmp", args["ready-file"]);
}
console.log(line);

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    app.close().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
