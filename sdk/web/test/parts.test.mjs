// The SDK's pure parts, in Node: the byte-exact chunking of beacons and the
// one retry policy every request follows.

import assert from "node:assert/strict";
import { test } from "node:test";

import { chunkArrays, createBackoff, utf8Bytes, verdict } from "../src/hivestream.js";

const answer = (status, retryAfter) => ({ status, headers: { get: (h) => (h === "retry-after" ? retryAfter : null) } });

test("sizes are UTF-8 bytes, not string length", () => {
  assert.equal(utf8Bytes("abc"), 3);
  assert.equal(utf8Bytes("€"), 3);
  assert.equal(utf8Bytes("😀"), 4);
});

test("chunks hold every text once, in order, each within the byte limit", () => {
  const texts = Array.from({ length: 50 }, (_, i) => JSON.stringify({ i, s: "€".repeat(i * 25) }));
  const limit = 4000;
  const chunks = chunkArrays(texts, limit);
  const back = chunks.flatMap((c) => JSON.parse(c.body).map((x) => JSON.stringify(x)));
  assert.deepEqual(back, texts);
  for (const c of chunks) assert.ok(utf8Bytes(c.body) <= limit, `${utf8Bytes(c.body)} > ${limit}`);
  assert.equal(chunks.at(-1).end, texts.length);
  // A chunk closes only when the next text would not fit.
  for (let k = 0; k + 1 < chunks.length; k++) {
    const next = texts[chunks[k].end];
    assert.ok(utf8Bytes(chunks[k].body) + 1 + utf8Bytes(next) > limit);
  }
});

test("a multi-byte chunk is split by bytes where string length would not split it", () => {
  const texts = Array.from({ length: 4 }, () => JSON.stringify("€".repeat(5500)));
  assert.ok(texts.join(",").length < 6e4, "string length fits one beacon");
  assert.ok(chunkArrays(texts, 6e4).length > 1, "its bytes do not");
});

test("a text larger than the limit travels alone", () => {
  const chunks = chunkArrays(["1", JSON.stringify("x".repeat(100)), "2"], 50);
  assert.deepEqual(chunks.map((c) => c.body), ["[1]", `["${"x".repeat(100)}"]`, "[2]"]);
});

test("what an answer means: ok, retry, or drop", () => {
  assert.equal(verdict(null), "retry");
  assert.equal(verdict(answer(200)), "ok");
  for (const s of [408, 429, 500, 502, 503]) assert.equal(verdict(answer(s)), "retry", `${s}`);
  for (const s of [400, 401, 403, 404, 413]) assert.equal(verdict(answer(s)), "drop", `${s}`);
});

test("backoff doubles with jitter, honours Retry-After, never passes maxBackoff, and resets", () => {
  const b = createBackoff(8000);
  const waits = Array.from({ length: 6 }, () => b.next(null));
  const steps = [1000, 2000, 4000, 8000, 8000, 8000];
  waits.forEach((w, i) => assert.ok(w >= steps[i] / 2 && w <= steps[i], `wait ${i}: ${w}`));
  assert.equal(createBackoff(8000).next(answer(503, "5")), 5000);
  assert.equal(createBackoff(8000).next(answer(503, "120")), 8000, "capped by maxBackoff");
  b.reset();
  assert.ok(b.next(null) <= 1000);
});
