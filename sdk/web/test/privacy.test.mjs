// Consent, retries and limits of the SDK in Debian's Chromium: requests are
// held, refused or answered by playwright's routing in front of a real
// collector, so each race (a withdrawal while a request is in flight) is
// reproduced exactly rather than by timing.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { drained, openPage, sleep, startWorld, waitFor } from "./harness.mjs";

let world;
before(async () => (world = await startWorld()));
after(async () => world?.close());

const alias = () => ({ priority: 0, tag: "email", id: `reader-${Date.now()}-${Math.random()}@example.com` });

/** Every hs_* cookie and localStorage key the page's origin holds. */
async function storedKeys(ctx, page) {
  const cookies = (await ctx.cookies()).map((c) => `cookie:${c.name}`).filter((n) => n.startsWith("cookie:hs_"));
  const local = await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith("hs_")));
  return [...cookies, ...local.map((k) => `local:${k}`)].sort();
}

/** Records requests to the collector from now on, but for `except`. */
function recordRequests(page, except) {
  const seen = [];
  page.on("request", (r) => {
    if (r.url().startsWith(world.collector.url) && r !== except) seen.push(r.url());
  });
  return seen;
}

/** Holds the next request to `pattern` until the returned route is continued. */
async function hold(page, pattern) {
  let take;
  const held = new Promise((r) => (take = r));
  await page.route(pattern, (route) => take(route), { times: 1 });
  return held;
}

// Only the refusal itself is remembered (hs_consent = 0), so that the next
// page does not start collecting again.
const AFTER_WITHDRAWAL = ["local:hs_consent"];

async function nothingMoreHappens(ctx, page, sent) {
  await page.evaluate(() => {
    hs.page();
    hs.track("AfterWithdrawal");
    hs.flush();
  });
  await sleep(2500); // two flush intervals and a first backoff step
  assert.deepEqual(sent, [], "no request after consent(false)");
  assert.deepEqual(await storedKeys(ctx, page), AFTER_WITHDRAWAL);
  assert.equal(await page.evaluate(() => localStorage.getItem("hs_consent")), "0");
  assert.equal(await page.evaluate(() => [hs.userId(), hs.sessionId(), hs.stats().queued].join()), ",,0");
}

test("consent withdrawn while identify is in flight: nothing stored, nothing sent, identify gives null", async () => {
  const ctx = await world.browser.newContext();
  const page = await openPage(ctx, world.origin);
  await page.evaluate(() => hs.track("BeforeWithdrawal"));
  await drained(page);
  assert.ok((await storedKeys(ctx, page)).includes("cookie:hs_uid"));
  const held = hold(page, "**/v2.0/identify**");
  await page.evaluate((a) => void (window.pending = hs.identify([a])), alias());
  const route = await held;
  await page.evaluate(() => hs.consent(false));
  const sent = recordRequests(page, route.request());
  await route.continue(); // the collector answers 200 with the user id
  assert.equal(await page.evaluate(() => window.pending), null);
  await nothingMoreHappens(ctx, page, sent);
  await ctx.close();
});

test("consent withdrawn while identify backs off: it gives null at once and never retries", async () => {
  const ctx = await world.browser.newContext();
  const page = await openPage(ctx, world.origin, { maxBackoff: 2000 });
  let attempts = 0;
  await page.route("**/v2.0/identify**", (route) => {
    attempts++;
    return route.abort("connectionrefused"); // the collector is unreachable
  });
  await page.evaluate((a) => void (window.pending = hs.identify([a])), alias());
  await waitFor(() => attempts >= 2, 10000, "identify to retry");
  await page.evaluate(() => hs.consent(false));
  const sent = recordRequests(page, null);
  await page.unroute("**/v2.0/identify**"); // the collector is back
  const settled = await page.evaluate(() =>
    Promise.race([window.pending, new Promise((r) => setTimeout(() => r("still pending"), 300))])
  );
  assert.equal(settled, null);
  await nothingMoreHappens(ctx, page, sent);
  await ctx.close();
});

test("consent withdrawn while an aliased batch is in flight: its user is not adopted", async () => {
  const ctx = await world.browser.newContext();
  const page = await openPage(ctx, world.origin, { aliases: [alias()], flushInterval: 600000 });
  const held = hold(page, "**/v2.0/events/batch**");
  await page.evaluate(() => {
    hs.track("ByAlias");
    hs.flush();
  });
  const route = await held;
  await page.evaluate(() => hs.consent(false));
  const sent = recordRequests(page, route.request());
  await route.continue(); // the answer carries the resolved user_id
  await waitFor(() => page.evaluate(() => hs.stats().sent === 1), 10000, "the batch answer");
  await nothingMoreHappens(ctx, page, sent);
  await ctx.close();
});

test("identify follows the events' retry policy: Retry-After within maxBackoff; a 4xx it cannot fix rejects", async () => {
  const ctx = await world.browser.newContext();
  const page = await openPage(ctx, world.origin, { maxBackoff: 1500 });
  // As the collector answers cross-origin: Retry-After exposed to the page.
  const cors = { "access-control-allow-origin": "*", "access-control-expose-headers": "retry-after" };
  const answers = [
    { status: 503, headers: { ...cors, "retry-after": "1" }, body: "{}" },
    { status: 429, headers: { ...cors, "retry-after": "30" }, body: "{}" },
  ];
  const times = [];
  await page.route("**/v2.0/identify**", (route) => {
    times.push(Date.now());
    const next = answers.shift();
    return next ? route.fulfill(next) : route.continue();
  });
  const user = await page.evaluate((a) => hs.identify([a]), alias());
  assert.match(user, /^[0-9a-f-]{36}$/);
  assert.equal(times.length, 3);
  const waits = [times[1] - times[0], times[2] - times[1]];
  // Backoff alone would wait 0.5-1 s first: Retry-After makes it 1 s. Then
  // Retry-After asks for 30 s, and maxBackoff caps every wait at 1.5 s.
  assert.ok(waits[0] >= 950 && waits[0] < 1400, `Retry-After honoured: ${waits}`);
  assert.ok(waits[1] >= 1450 && waits[1] < 5000, `capped by maxBackoff: ${waits}`);
  assert.equal(await page.evaluate(() => hs.stats().retries), 2);
  await page.unroute("**/v2.0/identify**");
  await page.route("**/v2.0/identify**", (route) => route.fulfill({ status: 400, headers: cors, body: "{}" }));
  const refused = await page.evaluate((a) => hs.identify([a]).then(() => "resolved", (e) => e.message), alias());
  assert.match(refused, /identify refused \(400\)/);
  assert.equal(await page.evaluate(() => hs.stats().retries), 2, "a 400 is not retried");
  await ctx.close();
});

test("init() twice tears the first tracker down: one listener, one set of timers", async () => {
  const ctx = await world.browser.newContext();
  const page = await openPage(ctx, world.origin);
  const marker = `link-${Date.now()}`;
  await page.evaluate(
    async ({ url, marker }) => {
      const { init } = await import(`${url}/v2.0/sdk.js`);
      window.hs = init({ url, key: "pk_browser_test_key", flushInterval: 200 });
      document.querySelector("#link").textContent = marker;
    },
    { url: world.collector.url, marker }
  );
  await page.click("#link");
  await drained(page);
  const clicks = () => world.collector.records().events.filter((e) => e.name === "LinkClick" && e.properties.text === marker);
  await waitFor(() => clicks().length > 0, 15000, "the click");
  await sleep(1000); // a second tracker's copy would be flushed by now
  assert.equal(clicks().length, 1, "one click listener");
  await ctx.close();
});

test("beacons are cut by UTF-8 bytes: multi-byte events within 64 KiB by length, not by size, still go", async () => {
  const ctx = await world.browser.newContext();
  const page = await openPage(ctx, world.origin, { flushInterval: 600000 });
  // 4 events of about 16.5 KB each: 22k characters in all, but 66 KB of UTF-8,
  // which sendBeacon refuses as one body.
  const ids = await page.evaluate(() => Array.from({ length: 4 }, (_, i) => hs.track("Wide", { i, s: "€".repeat(5500) })));
  await page.close({ runBeforeUnload: true });
  const got = () => world.collector.records().events.filter((e) => ids.includes(e.event_id));
  await waitFor(() => got().length >= 1, 15000, "a beaconed chunk");
  // What the browser did not take stays queued and goes with the next page.
  const next = await openPage(ctx, world.origin);
  await drained(next, 20000);
  await waitFor(() => got().length === 4, 15000, "every wide event");
  assert.equal(new Set(got().map((e) => e.event_id)).size, 4, "each once");
  await ctx.close();
});
