// Test harness: a real hivestream collector (the binary cargo built), a page
// server on another loopback origin, Debian's Chromium through
// playwright-core, and a reader of the local bucket tree.

import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { gunzipSync } from "node:zlib";
import { chromium } from "playwright-core";

export const INGEST_KEY = "pk_browser_test_key";
export const ADMIN_KEY = "sk_browser_test_admin";
const BIN = process.env.HIVESTREAM_BIN || new URL("../../../target/debug/hivestream", import.meta.url).pathname;

export async function freePort() {
  const s = createServer();
  s.listen(0, "127.0.0.1");
  await once(s, "listening");
  const port = s.address().port;
  s.close();
  return port;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` every 100 ms until it returns a truthy value or `ms` pass. */
export async function waitFor(check, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** A hivestream collector on 127.0.0.1:port, reached by pages as localhost:port. */
export class Collector {
  constructor(port, allowedOrigins) {
    this.port = port;
    this.origins = allowedOrigins;
    this.dir = mkdtempSync(join(tmpdir(), "hivestream-browser-"));
    this.url = `http://localhost:${port}`;
  }

  get bucket() {
    return join(this.dir, "bucket");
  }

  async start() {
    const args = [
      "serve",
      "--listen", `127.0.0.1:${this.port}`,
      "--data-dir", join(this.dir, "data"),
      "--sink", `file://${this.bucket}`,
      "--flush-interval", "300ms",
      "--ingest-key", INGEST_KEY,
      "--admin-key", ADMIN_KEY,
      "--allowed-origin", this.origins.join(","),
    ];
    this.proc = spawn(BIN, args, { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, HIVESTREAM_LOG: "warn" } });
    const lines = createInterface({ input: this.proc.stdout });
    for await (const line of lines) {
      if (line.startsWith("listening on")) return this;
    }
    throw new Error(`hivestream did not start (${BIN})`);
  }

  async stop() {
    if (!this.proc || this.proc.exitCode !== null) return;
    this.proc.kill("SIGTERM");
    await once(this.proc, "exit");
  }

  remove() {
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Every record in the bucket, by data type. */
  records() {
    const out = { events: [], sync_aliases: [], segment: [] };
    const walk = (dir) => {
      let names = [];
      try {
        names = readdirSync(dir);
      } catch {
        return;
      }
      for (const n of names) {
        const p = join(dir, n);
        if (statSync(p).isDirectory()) walk(p);
        else if (n.endsWith(".jsonl.gz")) {
          const type = p.slice(this.bucket.length + 1).split("/")[0].replace("type=", "");
          const text = gunzipSync(readFileSync(p)).toString("utf8");
          for (const line of text.split("\n").filter(Boolean)) out[type].push(JSON.parse(line));
        }
      }
    };
    walk(this.bucket);
    return out;
  }
}

/** Serves test pages on 127.0.0.1:port: /page?opts=JSON loads the SDK from the collector. */
export async function pageServer(port, collectorUrl) {
  const server = createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    if (url.pathname !== "/page") {
      res.writeHead(404).end();
      return;
    }
    const opts = url.searchParams.get("opts") || "{}";
    res.writeHead(200, { "content-type": "text/html" });
    res.end(`<!doctype html><html><head><title>Test page</title></head><body>
<a id="link" href="#section">A link to a section</a><p id="section">Section</p>
<script type="module">
import { init } from "${collectorUrl}/v2.0/sdk.js";
window.hs = init(Object.assign({ url: "${collectorUrl}", key: "${INGEST_KEY}", flushInterval: 200 }, ${opts}));
</script></body></html>`);
  });
  server.listen(port, "127.0.0.1");
  await once(server, "listening");
  return server;
}

/** Chromium with a fresh profile (playwright makes one per launch). */
export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
}

/** Opens the test page with SDK options, waiting until the SDK is ready. */
export async function openPage(context, origin, opts = {}) {
  const page = await context.newPage();
  await page.goto(`${origin}/page?opts=${encodeURIComponent(JSON.stringify(opts))}`);
  await page.waitForFunction(() => window.hs !== undefined);
  return page;
}

/**
 * A collector allowing one page origin, a page server on that origin and one
 * on a stranger's, and Chromium; `close()` ends them all.
 */
export async function startWorld() {
  const [a, b, c] = [await freePort(), await freePort(), await freePort()];
  const world = { origin: `http://127.0.0.1:${a}`, strangerOrigin: `http://127.0.0.1:${c}` };
  world.collector = await new Collector(b, [world.origin]).start();
  world.pages = await pageServer(a, world.collector.url);
  world.strangers = await pageServer(c, world.collector.url);
  world.browser = await launch();
  world.close = async () => {
    await world.browser?.close();
    world.pages?.close();
    world.strangers?.close();
    await world.collector?.stop();
    world.collector?.remove();
  };
  return world;
}

/** Waits until the page's queue is empty. */
export async function drained(page, ms = 15000) {
  await waitFor(() => page.evaluate(() => window.hs.stats().queued === 0), ms, "the SDK queue to drain");
}
