// hivestream web SDK: first-party events from a page to a hivestream collector.
// Dependency-free ES module. See README.md for the snippet and what it stores.
//
// Built from small parts, each a factory below, wired together by `init`:
//
//   consent ──gates──> storage (every cookie and localStorage write)
//      │                 ▲   ▲
//      │ withdraw        │   │
//      ▼                 │   │
//   identity ─────────────┘   queue <── track / page / engagement (session)
//      │ identify()               │
//      └────────> transport <─────┘ flush / beacon
//                    │
//                 retry policy (one, for every request)
//
// Invariant: after consent(false) nothing is written to cookies or storage and
// nothing is sent until consent(true); an answer to a request made before the
// withdrawal is discarded (the consent epoch it was sent under has ended).

const DAY = 864e5;
const ACTIVE_MS = 5e3; // input within this long counts as engaged
const BEACON_TTL = DAY / 2; // a beaconed event older than this is not sent again
const MAX_QUEUE = 1000;
const MAX_BODY_BYTES = 6e4; // keepalive fetches and sendBeacon refuse bodies near 64 KiB
const UID_MAX_AGE = 365 * 864e2; // seconds
const DEFAULTS = {
  batchSize: 20,
  flushInterval: 2000,
  engagementInterval: 10000,
  sessionTimeout: 18e5,
  trackClicks: true,
  prefix: "hs",
  maxBackoff: 60000,
};

const uuid = () =>
  crypto.randomUUID
    ? crypto.randomUUID()
    : "10000000-1000-4000-8000-100000000000".replace(/[018]/g, (c) =>
        (c ^ (crypto.getRandomValues(new Uint8Array(1))[0] & (15 >> (c / 4)))).toString(16)
      );

const encoder = new TextEncoder();
/** The UTF-8 size of a string: the limits of keepalive and beacons are in bytes. */
export const utf8Bytes = (s) => encoder.encode(s).length;

// ---- storage: localStorage and the cookie, every write gated by consent ----

function readJSON(key, fallback) {
  try {
    const v = localStorage.getItem(key);
    return v == null ? fallback : JSON.parse(v);
  } catch (e) {
    return fallback;
  }
}

function writeJSON(key, value) {
  try {
    localStorage.setItem(key, JSON.stringify(value));
  } catch (e) {
    /* storage full or blocked: the value lives in memory only */
  }
}

function removeKey(key) {
  try {
    localStorage.removeItem(key);
  } catch (e) {
    /* blocked storage: nothing stored */
  }
}

function getCookie(name) {
  const m = document.cookie.match("(?:^|; )" + name + "=([^;]*)");
  return m ? decodeURIComponent(m[1]) : null;
}

function setCookie(name, value, maxAge, domain) {
  const secure = location.protocol === "https:" ? ";secure" : "";
  const dom = domain ? ";domain=" + domain : "";
  document.cookie = name + "=" + encodeURIComponent(value) + ";path=/;max-age=" + maxAge + ";samesite=lax" + secure + dom;
}

// The registrable domain: the shortest suffix of the host the browser lets
// us set a cookie on (public suffixes such as co.uk are refused).
function cookieDomain(host) {
  if (/^[\d.]+$|^\[|^localhost$/.test(host) || !host.includes(".")) return "";
  const parts = host.split(".");
  for (let i = parts.length - 2; i >= 0; i--) {
    const d = parts.slice(i).join(".");
    document.cookie = "hs_probe=1;path=/;domain=" + d;
    if (getCookie("hs_probe")) {
      document.cookie = "hs_probe=;path=/;domain=" + d + ";max-age=0";
      return d;
    }
  }
  return "";
}

/** Prefixed keys; `write` and `setCookie` do nothing while `allowed()` is false. */
function createStorage(prefix, allowed) {
  const key = (name) => prefix + "_" + name;
  let domain = null; // probed on the first cookie write, which needs consent
  return {
    key,
    read: (name, fallback) => readJSON(key(name), fallback),
    write(name, value) {
      if (allowed()) writeJSON(key(name), value);
    },
    remove: (name) => removeKey(key(name)),
    cookie: (name) => getCookie(key(name)),
    setCookie(name, value) {
      if (!allowed()) return;
      if (domain === null) domain = cookieDomain(location.hostname);
      setCookie(key(name), value, UID_MAX_AGE, domain);
    },
    clearCookie(name) {
      const d = domain === null ? cookieDomain(location.hostname) : domain;
      setCookie(key(name), "", 0, d);
      if (d) setCookie(key(name), "", 0, "");
    },
  };
}

// ---- consent ----

/** The visitor's choice, and an epoch that ends with every withdrawal. */
function createConsent(initial) {
  let given = initial;
  let epoch = 0;
  const onWithdraw = new Set();
  return {
    given: () => given,
    epoch: () => epoch,
    /** True while the epoch `e` is current and consent is given. */
    holds: (e) => given && e === epoch,
    /** Called on every withdrawal until the returned function removes it. */
    watch(fn) {
      onWithdraw.add(fn);
      return () => onWithdraw.delete(fn);
    },
    set(value) {
      if (given && !value) {
        epoch++;
        given = false;
        for (const fn of [...onWithdraw]) fn();
      } else if (value) {
        given = true;
      }
    },
  };
}

// ---- retry policy: one for every request the SDK makes ----

/** What an answer means: "ok", "retry" (408, 429, 5xx, network error) or "drop". */
export function verdict(resp) {
  if (!resp) return "retry";
  if (resp.status === 200) return "ok";
  if (resp.status === 408 || resp.status === 429 || resp.status >= 500) return "retry";
  return "drop"; // a 4xx retrying cannot fix (bad key, origin, size)
}

/** Exponential backoff with jitter, at most `maxBackoff`, honouring `Retry-After`. */
export function createBackoff(maxBackoff) {
  let step = 0;
  return {
    reset: () => (step = 0),
    /** The wait in milliseconds before the next attempt, after `resp` (null: a network error). */
    next(resp) {
      step = Math.min(maxBackoff, step ? step * 2 : 1000);
      const after = resp ? Number(resp.headers.get("retry-after")) : 0;
      return Math.min(maxBackoff, Math.max(after > 0 ? after * 1000 : 0, step * (0.5 + Math.random() / 2)));
    },
  };
}

// ---- transport ----

function createTransport(base, key) {
  const query = key ? "?k=" + encodeURIComponent(key) : "";
  return {
    /** POSTs a JSON body as text/plain (no CORS preflight); null on a network error. */
    async post(path, body) {
      try {
        return await fetch(base + path + query, {
          method: "POST",
          body,
          headers: { "content-type": "text/plain" },
          keepalive: utf8Bytes(body) < MAX_BODY_BYTES,
          credentials: "omit",
        });
      } catch (e) {
        return null;
      }
    },
    beacon: (path, body) => navigator.sendBeacon(base + path + query, new Blob([body], { type: "text/plain" })),
  };
}

/** A field of a JSON answer, or null when the body is cut short or not JSON (then: retry). */
const answer = (resp, field) => resp.json().then((body) => (body && body[field]) || null, () => null);

/** Splits JSON texts into JSON arrays of at most `limit` UTF-8 bytes, in one pass. */
export function chunkArrays(texts, limit) {
  const chunks = [];
  let parts = [];
  let bytes = 2; // "[" and "]"
  texts.forEach((text, i) => {
    const size = utf8Bytes(text);
    if (parts.length && bytes + 1 + size > limit) {
      chunks.push({ body: "[" + parts.join(",") + "]", end: i });
      parts = [];
      bytes = 2;
    }
    bytes += size + (parts.length ? 1 : 0);
    parts.push(text);
  });
  if (parts.length) chunks.push({ body: "[" + parts.join(",") + "]", end: texts.length });
  return chunks;
}

// ---- queue: one localStorage entry per event (hs_q.<event_id>), so that tabs
// of the site add and remove events without overwriting each other ----

/** A queue entry as SDK 0.1.0 stored it ({e, at, n, b}) in today's shape. */
const upgraded = (x) => (x && x.e ? { event: x.e, at: x.at, seq: x.n, beaconed: x.b } : x);

function createQueue(storage, stats) {
  const prefix = storage.key("q.");
  let seq = 0;
  let items = [];
  const stale = (x) => x.beaconed && Date.now() - x.beaconed > BEACON_TTL;
  const forget = (id) => removeKey(prefix + id);
  const queue = {
    items: () => items,
    /** Re-reads the queue, with what other tabs queued or delivered. */
    load() {
      const out = [];
      try {
        for (let i = 0; i < localStorage.length; i++) {
          const k = localStorage.key(i);
          if (k && k.startsWith(prefix)) {
            const x = upgraded(readJSON(k, null));
            if (x && x.event) out.push(x);
          }
        }
      } catch (e) {
        return items;
      }
      items = out.sort((a, b) => a.at - b.at || a.seq - b.seq);
      return items;
    },
    save: (x) => storage.write("q." + x.event.event_id, x),
    push(event) {
      const x = { event, at: Date.now(), seq: seq++ };
      items.push(x);
      queue.save(x);
      if (items.length > MAX_QUEUE) {
        const old = items.slice(0, items.length - MAX_QUEUE).map((y) => y.event.event_id);
        stats.dropped += old.length;
        queue.remove(new Set(old));
      }
    },
    /** Removes events by id (delivered, or dropped). */
    remove(ids) {
      ids.forEach(forget);
      items = items.filter((x) => !ids.has(x.event.event_id));
    },
    clear: () => queue.remove(new Set(queue.load().map((x) => x.event.event_id))),
  };
  queue.load();
  const expired = items.filter(stale).map((x) => x.event.event_id);
  queue.remove(new Set(expired));
  return queue;
}

// ---- identity: the user id, identify() and adoption of an aliased user ----

function createIdentity(storage, consent, transport, options, stats) {
  // The user id, kept in memory; the cookie is renewed once per page (on the
  // first use of the id after the SDK loads) and when the id changes.
  let uid = null;
  const setUser = (id) => {
    if (!consent.given()) return;
    uid = id;
    storage.setCookie("uid", id);
    storage.write("uid", id);
  };
  const identity = {
    userId() {
      if (!consent.given()) return null;
      if (!uid) setUser(storage.cookie("uid") || storage.read("uid", null) || uuid());
      return uid;
    },
    identified: () => storage.read("identified", 0) === 1,
    /** Whether events still go by alias: aliases given, no identify and no adoption yet. */
    byAlias: () => !!options.aliases && !identity.identified() && !storage.read("adopted", 0),
    /** Adopts the user the collector resolved aliased events to, if still wanted. */
    adopt(id, epoch) {
      if (!id || !consent.holds(epoch) || identity.identified()) return;
      setUser(id);
      storage.write("adopted", 1);
    },
    forget() {
      for (const k of ["uid", "identified", "adopted"]) storage.remove(k);
      storage.clearCookie("uid");
      uid = null;
    },
    identify: (aliases) => identifyLoop(identity, aliases, { storage, consent, transport, options, stats, setUser }),
  };
  return identity;
}

/** Calls /v2.0/identify until it succeeds, is refused, or consent is withdrawn (then null). */
async function identifyLoop(identity, aliases, { storage, consent, transport, options, stats, setUser }) {
  if (!consent.given()) return null;
  const epoch = consent.epoch();
  const body = JSON.stringify({ user_id: identity.userId(), aliases });
  const backoff = createBackoff(options.maxBackoff);
  for (;;) {
    const resp = await transport.post("/v2.0/identify", body);
    if (!consent.holds(epoch)) return null;
    const kind = verdict(resp);
    const id = kind === "ok" ? await answer(resp, "user_id") : null;
    if (!consent.holds(epoch)) return null;
    if (id) {
      setUser(id);
      storage.write("identified", 1);
      return id;
    }
    if (kind === "drop") throw new Error("hivestream: identify refused (" + resp.status + ")");
    stats.retries++;
    if (!(await waitUnlessWithdrawn(consent, backoff.next(resp)))) return null;
  }
}

/** Sleeps `ms`; resolves false at once if consent is withdrawn meanwhile. */
function waitUnlessWithdrawn(consent, ms) {
  return new Promise((resolve) => {
    const unwatch = consent.watch(() => {
      clearTimeout(timer);
      unwatch();
      resolve(false);
    });
    const timer = setTimeout(() => {
      unwatch();
      resolve(true);
    }, ms);
  });
}

// ---- session and engagement ----

function createSession(storage, options) {
  // The session rolls after sessionTimeout without events; its last-event
  // time is stored at most once a second (other tabs share it).
  let current = null;
  let viewId = null;
  let engaged = 0;
  let reported = 0;
  let lastInput = Date.now();
  return {
    id() {
      const now = Date.now();
      if (!current || now - current.last > 1000) {
        const stored = storage.read("session", null);
        if (stored && (!current || stored.last > current.last)) current = stored;
        if (!current || now - current.last > options.sessionTimeout) current = { id: uuid(), last: now };
        current.last = now;
        storage.write("session", current);
      }
      current.last = now;
      return current.id;
    },
    storedId: () => (current || storage.read("session", {})).id || null,
    viewId: () => viewId,
    input: () => (lastInput = Date.now()),
    /** Counts a second of engagement if the tab is visible and the user active. */
    tick() {
      if (document.visibilityState === "visible" && Date.now() - lastInput < ACTIVE_MS) engaged += 1000;
    },
    /** The engagement not yet reported, or null; marks it reported. */
    takeEngagement() {
      if (!viewId || engaged === reported) return null;
      const out = { engaged_time: engaged / 1000, delta: (engaged - reported) / 1000 };
      reported = engaged;
      return out;
    },
    newView() {
      viewId = uuid();
      engaged = reported = 0;
    },
    forget() {
      storage.remove("session");
      current = null;
    },
  };
}

// ---- the tracker: wires the parts, listeners and timers ----

let running = null; // the tracker of the last init(), torn down by the next

export function init(options) {
  const o = Object.assign({}, DEFAULTS, options);
  if (!o.url) throw new Error("hivestream: init({url}) is required");
  if (running) running.stop();
  const stats = { sent: 0, dropped: 0, retries: 0 };
  const consentKey = o.prefix + "_consent";
  const consent = createConsent(readJSON(consentKey, o.consent === false ? 0 : 1) === 1);
  const storage = createStorage(o.prefix, consent.given);
  const transport = createTransport(o.url.replace(/\/+$/, ""), o.key);
  const queue = createQueue(storage, stats);
  const identity = createIdentity(storage, consent, transport, o, stats);
  const session = createSession(storage, o);
  const sender = createSender({ queue, identity, transport, consent, stats, options: o });
  const tracker = createTracker({ queue, identity, session, sender, consent, stats, consentKey, options: o });
  running = tracker;
  return tracker;
}

function createSender({ queue, identity, transport, consent, stats, options }) {
  const backoff = createBackoff(options.maxBackoff);
  let sending = false;
  let nextTry = 0;
  const settle = (batch, results, epoch) => {
    const answered = new Set();
    for (const r of results) {
      const event = batch[r.index] && batch[r.index].event;
      if (!event) continue;
      answered.add(event.event_id);
      if (r.status >= 200 && r.status < 300) stats.sent++;
      else stats.dropped++;
      if (event.aliases) identity.adopt(r.user_id, epoch);
    }
    queue.remove(answered);
  };
  const sender = {
    async flush() {
      if (sending || !consent.given() || Date.now() < nextTry) return;
      if (!queue.load().length) return;
      sending = true;
      const epoch = consent.epoch();
      const batch = queue.items().slice(0, options.batchSize);
      const resp = await transport.post("/v2.0/events/batch", JSON.stringify(batch.map((x) => x.event)));
      const kind = verdict(resp);
      const results = kind === "ok" ? await answer(resp, "results") : null;
      if (results) {
        backoff.reset();
        settle(batch, results, epoch);
      } else if (kind === "drop") {
        stats.dropped += batch.length;
        queue.remove(new Set(batch.map((x) => x.event.event_id)));
      } else {
        stats.retries++;
        nextTry = Date.now() + backoff.next(resp);
      }
      sending = false;
      if (queue.items().length >= options.batchSize) setTimeout(sender.flush, 0);
    },
    // The page is going away: hand what is queued to the browser. The events
    // stay queued (marked), so the next page sends them again if the beacon
    // was lost; their ids make the collector keep one copy.
    beacon() {
      if (!consent.given() || !navigator.sendBeacon) return;
      const items = queue.load();
      let start = 0;
      for (const { body, end } of chunkArrays(items.map((x) => JSON.stringify(x.event)), MAX_BODY_BYTES)) {
        if (transport.beacon("/v2.0/events/batch", body)) {
          for (const x of items.slice(start, end)) {
            x.beaconed = Date.now();
            queue.save(x);
          }
        }
        start = end;
      }
    },
  };
  return sender;
}

function createTracker({ queue, identity, session, sender, consent, stats, consentKey, options }) {
  const track = (name, properties) => {
    if (!consent.given()) return null;
    const event = { event_id: uuid(), name, session_id: session.id(), view_id: session.viewId(), properties: properties || {} };
    if (identity.byAlias()) event.aliases = options.aliases;
    else event.user_id = identity.userId();
    queue.push(event);
    if (queue.items().length >= options.batchSize) sender.flush();
    return event.event_id;
  };
  const report = () => {
    const engagement = session.takeEngagement();
    if (engagement) track("PageviewEngagement", engagement);
  };
  const stop = listen({ session, sender, report, track, options });
  return {
    track,
    page(properties) {
      report();
      session.newView();
      const client = {
        url: location.href,
        referrer: document.referrer,
        title: document.title,
        domain: location.hostname,
        user_agent: navigator.userAgent,
      };
      return track("Pageview", Object.assign({ client }, properties));
    },
    identify: identity.identify,
    consent(given) {
      consent.set(!!given);
      writeJSON(consentKey, consent.given() ? 1 : 0);
      if (consent.given()) return;
      queue.clear();
      identity.forget();
      session.forget();
    },
    flush: sender.flush,
    stats: () => Object.assign({ queued: queue.items().length }, stats),
    userId: identity.userId,
    sessionId: () => (consent.given() ? session.storedId() : null),
    viewId: session.viewId,
    stop,
  };
}

/** Adds the page listeners and timers; returns the function that removes them all. */
function listen({ session, sender, report, track, options }) {
  const lifetime = new AbortController();
  const on = (target, type, fn, extra) => target.addEventListener(type, fn, Object.assign({ signal: lifetime.signal }, extra));
  const leaving = () => {
    report();
    sender.beacon();
  };
  for (const t of ["mousemove", "keydown", "scroll", "touchstart", "click"]) {
    on(window, t, session.input, { passive: true, capture: true });
  }
  on(window, "pagehide", leaving);
  on(document, "visibilitychange", () => document.visibilityState === "hidden" && leaving());
  if (options.trackClicks) {
    const click = (e) => {
      const a = e.target && e.target.closest && e.target.closest("a[href]");
      if (a) track("LinkClick", { href: a.href, text: (a.textContent || "").trim().slice(0, 200) });
    };
    on(document, "click", click, { capture: true });
  }
  const timers = [
    setInterval(session.tick, 1000),
    setInterval(report, options.engagementInterval),
    setInterval(sender.flush, options.flushInterval),
  ];
  sender.flush();
  return () => {
    lifetime.abort();
    timers.forEach(clearInterval);
  };
}
