// The SDK in a real browser: Debian's Chromium, a page on one loopback origin
// (http://127.0.0.1:A) and the collector on another (http://localhost:B), so
// every request is cross-origin. Each scenario checks the local bucket tree
// the collector writes.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { ADMIN_KEY, drained, INGEST_KEY, openPage, sleep, startWorld, waitFor } from "./harness.mjs";

let world, collector, browser, origin, strangerOrigin;

before(async () => {
  world = await startWorld();
  ({ collector, browser, origin, strangerOrigin } = world);
});

after(async () => {
  await world?.close();
});

const byName = (events, name) => events.filter((e) => e.name === name);

test("page view, engagement and clicks land with the right user, session and view", async () => {
  const ctx = await browser.newContext();
  const page = await openPage(ctx, origin, { engagementInterval: 500 });
  await page.evaluate(() => window.hs.page());
  for (let i = 0; i < 15; i++) {
    await page.mouse.move(10 + i * 7, 20 + i * 3);
    await sleep(200);
  }
  await page.click("#link");
  const ids = await page.evaluate(() => ({ u: hs.userId(), s: hs.sessionId(), v: hs.viewId() }));
  await drained(page);
  await page.close();
  const events = await waitFor(() => {
    const ev = collector.records().events.filter((e) => e.view_id === ids.v);
    const ok = byName(ev, "Pageview").length && byName(ev, "PageviewEngagement").length && byName(ev, "LinkClick").length;
    return ok && ev;
  }, 15000, "page view, engagement and click");
  for (const e of events) {
    assert.equal(e.user_id, ids.u, `${e.name}: user`);
    assert.equal(e.session_id, ids.s, `${e.name}: session`);
  }
  const pv = byName(events, "Pageview")[0];
  assert.equal(pv.properties.client.title, "Test page");
  assert.equal(pv.properties.client.domain, "127.0.0.1");
  assert.match(pv.properties.client.user_agent, /Chrome/);
  const engaged = Math.max(...byName(events, "PageviewEngagement").map((e) => e.properties.engaged_time));
  assert.ok(engaged >= 2, `engaged for about 3 s, got ${engaged}`);
  assert.match(byName(events, "LinkClick")[0].properties.href, /#section$/);
  await ctx.close();
});

test("alias-only events, then identify: one user across a reload", async () => {
  const ctx = await browser.newContext();
  const alias = { priority: 0, tag: "email", id: `reader-${Date.now()}@example.com` };
  let page = await openPage(ctx, origin, { aliases: [alias] });
  const before = await page.evaluate(() => hs.track("BeforeIdentify"));
  await drained(page);
  const user = await page.evaluate((a) => hs.identify([a]), alias);
  await page.reload();
  await page.waitForFunction(() => window.hs !== undefined);
  const afterId = await page.evaluate(() => hs.track("AfterIdentify"));
  assert.equal(await page.evaluate(() => hs.userId()), user, "the user survives the reload");
  await drained(page);
  const rec = await waitFor(() => {
    const r = collector.records();
    const got = r.events.filter((e) => e.event_id === before || e.event_id === afterId);
    return got.length === 2 && r;
  }, 15000, "both events");
  for (const e of rec.events.filter((e) => e.event_id === before || e.event_id === afterId)) {
    assert.equal(e.user_id, user, `${e.name} belongs to the identified user`);
  }
  const links = rec.sync_aliases.filter((s) => s.id === alias.id);
  assert.ok(links.length >= 1 && links.every((s) => s.user_id === user), "the alias is synced to that user");
  await ctx.close();
});

test("events queued while the collector is down are delivered once when it returns", async () => {
  const ctx = await browser.newContext();
  let page = await openPage(ctx, origin);
  await collector.stop();
  const ids = await page.evaluate(() => Array.from({ length: 10 }, (_, i) => hs.track("Offline", { i })));
  await sleep(1000); // sends fail (connection refused) and back off
  await page.reload(); // the queue survives a reload...
  await page.waitForFunction(() => window.hs !== undefined).catch(() => {});
  // ...even though the SDK itself cannot load while the collector is down.
  await collector.start();
  await page.reload();
  await page.waitForFunction(() => window.hs !== undefined);
  ids.push(...(await page.evaluate(() => Array.from({ length: 10 }, (_, i) => hs.track("Online", { i })))));
  await drained(page, 30000);
  const got = await waitFor(() => {
    const ev = collector.records().events.filter((e) => ids.includes(e.event_id));
    return ev.length >= ids.length && ev;
  }, 15000, "every queued event");
  assert.equal(got.length, ids.length, "each event exactly once");
  assert.equal(new Set(got.map((e) => e.event_id)).size, ids.length);
  await ctx.close();
});

test("a page closed right after track still delivers through the beacon", async () => {
  const ctx = await browser.newContext();
  const page = await openPage(ctx, origin, { flushInterval: 600000 });
  const id = await page.evaluate(() => hs.track("Goodbye"));
  await page.close({ runBeforeUnload: true });
  await waitFor(() => collector.records().events.some((e) => e.event_id === id), 15000, "the beaconed event");
  await ctx.close();
});

test("a disallowed origin is refused and the page sees the error", async () => {
  const ctx = await browser.newContext();
  const page = await openPage(ctx, strangerOrigin);
  const seen = await page.evaluate(async (url) => {
    const r = await fetch(`${url}/v2.0/events?k=pk_browser_test_key`, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: JSON.stringify({ name: "Stranger", user_id: "0b1e4c7c-1f53-4d8e-9a4e-7f1c2d3e4f50" }),
    });
    return { status: r.status, body: await r.json() };
  }, collector.url);
  assert.equal(seen.status, 403);
  assert.equal(seen.body.error.code, 1101);
  await page.evaluate(() => hs.track("Stranger"));
  await waitFor(() => page.evaluate(() => hs.stats().dropped > 0), 10000, "the SDK to drop the refused batch");
  assert.ok(!collector.records().events.some((e) => e.name === "Stranger"));
  await ctx.close();
});

test("an ingest key cannot reach the cohorts API", async () => {
  const ctx = await browser.newContext();
  const page = await openPage(ctx, origin);
  const outcome = await page.evaluate(async (url) => {
    try {
      const r = await fetch(`${url}/v2/cohorts?k=pk_browser_test_key`);
      return `status ${r.status}`;
    } catch (e) {
      return `refused: ${e.name}`;
    }
  }, collector.url);
  assert.equal(outcome, "refused: TypeError", "no CORS on admin routes: the page cannot read it");
  const direct = await fetch(`${collector.url}/v2/cohorts`, { headers: { "x-api-key": INGEST_KEY } });
  assert.equal(direct.status, 403);
  assert.equal((await direct.json()).error.code, 1101);
  const admin = await fetch(`${collector.url}/v2/cohorts`, { headers: { "x-api-key": ADMIN_KEY } });
  assert.equal(admin.status, 200);
  await ctx.close();
});

test("throughput: how many events one page queues and delivers per second", async () => {
  const ctx = await browser.newContext();
  const page = await openPage(ctx, origin, { batchSize: 100, flushInterval: 50 });
  const n = 1000; // the queue holds at most 1,000 events
  const queued = await page.evaluate((n) => {
    const t = performance.now();
    for (let i = 0; i < n; i++) hs.track("Bench", { i });
    return performance.now() - t;
  }, n);
  const t = Date.now();
  await drained(page, 120000);
  const delivered = (Date.now() - t) / 1000;
  const stats = await page.evaluate(() => hs.stats());
  assert.equal(stats.dropped, 0);
  console.log(
    `sdk throughput: ${n} events queued in ${queued.toFixed(0)} ms (${Math.round(n / (queued / 1000))}/s), ` +
      `delivered in ${delivered.toFixed(2)} s (${Math.round(n / delivered)}/s)`
  );
  await ctx.close();
});
