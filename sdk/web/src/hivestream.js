// hivestream web SDK: first-party events from a page to a hivestream collector.
// Dependency-free ES module. See README.md for the snippet and what it stores.

const DAY = 864e5;
const ACTIVE_MS = 5e3; // input within this long counts as engaged
const BEACON_TTL = DAY / 2; // a beaconed event older than this is not sent again
const MAX_QUEUE = 1000;
const MAX_BEACON = 6e4; // sendBeacon refuses bodies near 64 KiB

const uuid = () =>
  crypto.randomUUID
    ? crypto.randomUUID()
    : "10000000-1000-4000-8000-100000000000".replace(/[018]/g, (c) =>
        (c ^ (crypto.getRandomValues(new Uint8Array(1))[0] & (15 >> (c / 4)))).toString(16)
      );

function readJSON(k, fallback) {
  try {
    const v = localStorage.getItem(k);
    return v == null ? fallback : JSON.parse(v);
  } catch (e) {
    return fallback;
  }
}

function writeJSON(k, v) {
  try {
    localStorage.setItem(k, JSON.stringify(v));
  } catch (e) {
    /* storage full or blocked: the queue lives in memory only */
  }
}

function getCookie(name) {
  const m = document.cookie.match("(?:^|; )" + name + "=([^;]*)");
  return m ? decodeURIComponent(m[1]) : null;
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

function setCookie(name, value, maxAge, domain) {
  const secure = location.protocol === "https:" ? ";secure" : "";
  const dom = domain ? ";domain=" + domain : "";
  document.cookie = name + "=" + encodeURIComponent(value) + ";path=/;max-age=" + maxAge + ";samesite=lax" + secure + dom;
}

export function init(options) {
  const o = Object.assign(
    {
      batchSize: 20,
      flushInterval: 2000,
      engagementInterval: 10000,
      sessionTimeout: 18e5,
      trackClicks: true,
      prefix: "hs",
      maxBackoff: 60000,
    },
    options
  );
  if (!o.url) throw new Error("hivestream: init({url}) is required");
  const base = o.url.replace(/\/+$/, "");
  const q = o.key ? "?k=" + encodeURIComponent(o.key) : "";
  const K = (s) => o.prefix + "_" + s;
  const domain = cookieDomain(location.hostname);
  const stats = { sent: 0, dropped: 0, retries: 0 };
  // The queue: one localStorage entry per event (hs_q.<event_id>), so that
  // tabs of the site add and remove events without overwriting each other.
  const QK = K("q.");
  let seq = 0;
  let queue = [];
  const load = () => {
    const out = [];
    try {
      for (let i = 0; i < localStorage.length; i++) {
        const k = localStorage.key(i);
        if (k && k.startsWith(QK)) {
          const x = readJSON(k, null);
          if (x && x.e) out.push(x);
        }
      }
    } catch (e) {
      return queue;
    }
    return out.sort((a, b) => a.at - b.at || a.n - b.n);
  };
  const store = (x) => writeJSON(QK + x.e.event_id, x);
  const unstore = (id) => {
    try {
      localStorage.removeItem(QK + id);
    } catch (e) {
      /* blocked storage: nothing stored */
    }
  };
  queue = load();
  for (const x of queue) if (x.b && Date.now() - x.b > BEACON_TTL) unstore(x.e.event_id);
  queue = queue.filter((x) => !(x.b && Date.now() - x.b > BEACON_TTL));
  let consented = readJSON(K("consent"), o.consent === false ? 0 : 1) === 1;
  let backoff = 0;
  let nextTry = 0;
  let sending = false;
  let viewId = null;
  let engaged = 0;
  let reported = 0;
  let lastInput = Date.now();

  // The user id, kept in memory; the cookie (renewed once per page) and its
  // localStorage copy are written only when it changes.
  let uid = null;
  function userId() {
    if (!uid) setUser(getCookie(K("uid")) || readJSON(K("uid"), null) || uuid());
    return uid;
  }

  function setUser(id) {
    uid = id;
    setCookie(K("uid"), id, 365 * 864e2, domain);
    writeJSON(K("uid"), id);
  }

  // The session rolls after sessionTimeout without events; its last-event
  // time is stored at most once a second (other tabs share it).
  let session = null;
  function sessionId() {
    const now = Date.now();
    if (!session || now - session.last > 1000) {
      const stored = readJSON(K("session"), null);
      if (stored && (!session || stored.last > session.last)) session = stored;
      if (!session || now - session.last > o.sessionTimeout) session = { id: uuid(), last: now };
      session.last = now;
      writeJSON(K("session"), session);
    }
    session.last = now;
    return session.id;
  }

  const identified = () => readJSON(K("identified"), 0) === 1;
  // Removes events from the queue (delivered, or dropped).
  const remove = (ids) => {
    ids.forEach(unstore);
    queue = queue.filter((x) => !ids.has(x.e.event_id));
  };

  function track(name, properties) {
    if (!consented) return null;
    const ev = {
      event_id: uuid(),
      name,
      session_id: sessionId(),
      view_id: viewId,
      properties: properties || {},
    };
    if (o.aliases && !identified() && !readJSON(K("adopted"), 0)) ev.aliases = o.aliases;
    else ev.user_id = userId();
    const x = { e: ev, at: Date.now(), n: seq++ };
    queue.push(x);
    store(x);
    if (queue.length > MAX_QUEUE) {
      const old = queue.slice(0, queue.length - MAX_QUEUE).map((y) => y.e.event_id);
      stats.dropped += old.length;
      remove(new Set(old));
    }
    if (queue.length >= o.batchSize) flush();
    return ev.event_id;
  }

  function page(properties) {
    report();
    viewId = uuid();
    engaged = reported = 0;
    const client = {
      url: location.href,
      referrer: document.referrer,
      title: document.title,
      domain: location.hostname,
      user_agent: navigator.userAgent,
    };
    return track("Pageview", Object.assign({ client }, properties));
  }

  // Engagement: time the tab is visible and the user active.
  function tick() {
    if (document.visibilityState === "visible" && Date.now() - lastInput < ACTIVE_MS) engaged += 1000;
  }

  function report() {
    if (!viewId || engaged === reported) return;
    track("PageviewEngagement", { engaged_time: engaged / 1000, delta: (engaged - reported) / 1000 });
    reported = engaged;
  }

  function retryLater(resp) {
    stats.retries++;
    const after = resp && Number(resp.headers.get("retry-after"));
    backoff = Math.min(o.maxBackoff, backoff ? backoff * 2 : 1000);
    nextTry = Date.now() + Math.max(after > 0 ? after * 1000 : 0, backoff * (0.5 + Math.random() / 2));
  }

  function settle(batch, results) {
    const ids = new Map(batch.map((x) => [x.e.event_id, x]));
    for (const r of results) {
      const ev = batch[r.index] && batch[r.index].e;
      if (!ev) continue;
      ids.delete(ev.event_id);
      if (r.status >= 200 && r.status < 300) stats.sent++;
      else stats.dropped++;
      if (r.user_id && ev.aliases && !identified()) {
        setUser(r.user_id);
        writeJSON(K("adopted"), 1);
      }
    }
    remove(new Set(batch.map((x) => x.e.event_id).filter((id) => !ids.has(id))));
  }

  async function flush() {
    if (sending || !consented || Date.now() < nextTry) return;
    queue = load(); // with what other tabs queued or delivered
    if (!queue.length) return;
    sending = true;
    const batch = queue.slice(0, o.batchSize);
    const body = JSON.stringify(batch.map((x) => x.e));
    try {
      const resp = await fetch(base + "/v2.0/events/batch" + q, {
        method: "POST",
        body,
        headers: { "content-type": "text/plain" },
        keepalive: body.length < MAX_BEACON,
        credentials: "omit",
      });
      if (resp.status === 200) {
        backoff = 0;
        settle(batch, (await resp.json()).results);
      } else if (resp.status === 408 || resp.status === 429 || resp.status >= 500) {
        retryLater(resp);
      } else {
        // A 4xx retrying cannot fix (bad key, origin, size): drop the batch.
        stats.dropped += batch.length;
        remove(new Set(batch.map((x) => x.e.event_id)));
      }
    } catch (e) {
      retryLater(null);
    } finally {
      sending = false;
    }
    if (queue.length >= o.batchSize) setTimeout(flush, 0);
  }

  // The page is going away: hand what is queued to the browser. The events
  // stay queued (marked), so the next page sends them again if the beacon
  // was lost; their ids make the collector keep one copy.
  function beacon() {
    report();
    if (!consented || !navigator.sendBeacon) return;
    queue = load();
    let chunk = [];
    const send = () => {
      if (!chunk.length) return;
      const ok = navigator.sendBeacon(
        base + "/v2.0/events/batch" + q,
        new Blob([JSON.stringify(chunk.map((x) => x.e))], { type: "text/plain" })
      );
      if (ok) {
        chunk.forEach((x) => {
          x.b = Date.now();
          store(x);
        });
      }
      chunk = [];
    };
    for (const x of queue) {
      if (JSON.stringify(chunk.concat([x]).map((y) => y.e)).length > MAX_BEACON) send();
      chunk.push(x);
    }
    send();
  }

  async function identify(aliases) {
    if (!consented) return null;
    const body = JSON.stringify({ user_id: userId(), aliases });
    for (let wait = 500; ; wait = Math.min(o.maxBackoff, wait * 2)) {
      let resp = null;
      try {
        resp = await fetch(base + "/v2.0/identify" + q, {
          method: "POST",
          body,
          headers: { "content-type": "text/plain" },
          credentials: "omit",
        });
        if (resp.status === 200) {
          const id = (await resp.json()).user_id;
          setUser(id);
          writeJSON(K("identified"), 1);
          return id;
        }
        if (resp.status < 500 && resp.status !== 408 && resp.status !== 429) {
          throw new Error("hivestream: identify refused (" + resp.status + ")");
        }
      } catch (e) {
        if (resp && resp.status < 500) throw e;
      }
      stats.retries++;
      const after = resp && Number(resp.headers.get("retry-after"));
      await new Promise((r) => setTimeout(r, Math.max(after > 0 ? after * 1000 : 0, wait)));
    }
  }

  function consent(given) {
    consented = !!given;
    writeJSON(K("consent"), consented ? 1 : 0);
    if (!consented) {
      remove(new Set(load().map((x) => x.e.event_id)));
      try {
        for (const k of ["uid", "session", "identified", "adopted"]) localStorage.removeItem(K(k));
      } catch (e) {
        /* storage blocked: nothing was stored there */
      }
      setCookie(K("uid"), "", 0, domain);
      uid = session = null;
    }
  }

  const input = () => (lastInput = Date.now());
  for (const t of ["mousemove", "keydown", "scroll", "touchstart", "click"]) {
    addEventListener(t, input, { passive: true, capture: true });
  }
  addEventListener("pagehide", beacon);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") beacon();
  });
  if (o.trackClicks) {
    document.addEventListener(
      "click",
      (e) => {
        const a = e.target && e.target.closest && e.target.closest("a[href]");
        if (a) track("LinkClick", { href: a.href, text: (a.textContent || "").trim().slice(0, 200) });
      },
      true
    );
  }
  setInterval(tick, 1000);
  setInterval(report, o.engagementInterval);
  setInterval(flush, o.flushInterval);
  flush();

  return {
    track,
    page,
    identify,
    consent,
    flush,
    stats: () => Object.assign({ queued: queue.length }, stats),
    userId,
    sessionId: () => (session || readJSON(K("session"), {})).id || null,
    viewId: () => viewId,
  };
}
