// ClinicPulse browser client — a plain ES module, no build step.
//
//   import { connect, statusBadge } from '/static/clinicpulse.js';
//   const conn = connect({ token, since, topics: ['queue'], onEvent, onReset, onState });
//   document.body.append(statusBadge(conn));
//   await conn.send('PATCH', '/api/v1/queue/q_1', { status: 'called' }, { ifMatch: 3 });
//
// What it does (see the contract's "Browser client", "Push" and "Poll"):
//  - One connection per browser: tabs of the same origin and identity elect a
//    leader with the Web Locks API. Only the leader follows the stream (or
//    polls); it rebroadcasts every event over a BroadcastChannel. When the
//    leader tab closes, a waiting tab gets the lock and resumes from its own
//    cursor, which is the last event the old leader shared.
//  - The leader follows GET /api/v1/stream with an EventSource and a fresh
//    single-use ticket per connection, resuming with ?since=<cursor>. The
//    browser's own reconnect would re-send a spent ticket (401), so every error
//    closes the EventSource and we reconnect ourselves with backoff 1, 2, 4, 8,
//    16 s (capped, jittered).
//  - A poller of GET /api/v1/events always runs beside the stream: while the
//    stream is down it polls with ?stream=down at the server's X-Poll-Interval,
//    If-None-Match making idle polls 304s; while the stream is live it is a slow
//    safety net (?stream=live).
//  - A buffering proxy (the stream "opens" but nothing comes through within two
//    heartbeat periods, or the poller finds events the stream never delivers)
//    switches the poller to long-polling (?wait=), shortening the wait when a
//    proxy cuts long requests.
//  - Every event reaches onEvent exactly once and in seq order in every tab:
//    anything at or below the cursor is skipped.
//  - Writes go through conn.send. Offline (or while earlier writes wait), they
//    are stored in IndexedDB with an Idempotency-Key and replayed in order by
//    one tab at a time; an optimistic change is undone, with a visible notice,
//    when the server answers 409 or 412.
//  - The outbox belongs to one identity: the tenant, role and subject of the
//    token (decoded, never trusted: the server decides). When the token is
//    cleared or another identity's token arrives (a shared front-desk
//    machine), the queued writes — names, phones — are deleted, and a queued
//    write is never sent with another identity's token.
//  - `event: reset` and 410 cursor-expired call onReset, which refetches the
//    page's snapshots and returns their cursor; events continue from there.

const ENTITIES = ['patients', 'doctors', 'appointments', 'queue', 'visits', 'prescriptions', 'invoices'];
const EVENT_TYPES = [
  ...ENTITIES.flatMap((e) => [`${e}.created`, `${e}.updated`, `${e}.deleted`]),
  'queue.board', 'message',
];
// Event names a server may use for visible heartbeats (comment heartbeats are
// invisible to EventSource; see detectBuffering below).
const HEARTBEAT_TYPES = ['heartbeat', 'ping'];
const BUFFER_MAX = 2000; // events the leader keeps for tabs that join or lag
const BACKOFF_CAP_MS = 16000;

/** States of a connection, as the contract names them. */
export const STATES = Object.freeze(['live', 'fallback', 'offline']);

/** Opens a connection; see the module comment and the contract. */
export function connect(options) {
  return new Connection(options);
}

/** An HTTP problem (RFC 9457) answered by the API. */
export class ProblemError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.name = 'ProblemError';
    this.status = status;
    this.problem = problem || {};
  }
}

// sleep resolves after ms, or at once when signal aborts; it leaves no
// listener behind (a display page runs for days).
const sleep = (ms, signal) => new Promise((resolve) => {
  if (signal?.aborted) return resolve();
  const done = () => { clearTimeout(t); signal?.removeEventListener('abort', done); resolve(); };
  const t = setTimeout(done, ms);
  signal?.addEventListener('abort', done, { once: true });
});

/** backoff returns the delay before attempt n (0-based): 1, 2, 4, 8, 16 s capped, with equal jitter. */
export function backoff(n) {
  const base = Math.min(BACKOFF_CAP_MS, 1000 * 2 ** Math.max(0, n));
  return base / 2 + Math.random() * (base / 2);
}

function randomId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
}

/**
 * identityOf names whose outbox a token opens: base URL, tenant, role and
 * subject from its payload ('' for no token or an unreadable one).
 */
export function identityOf(token, baseUrl = '') {
  const c = token ? claims(token) : {};
  if (!c.tenant_id && !c.sub && !c.role) return '';
  return [baseUrl, c.tenant_id || '', c.role || '', c.sub || ''].join('|');
}

/** IdentityChanged: a queued write was not sent because the token is another identity's. */
class IdentityChanged extends Error {
  constructor() { super('the token now belongs to another identity'); this.name = 'IdentityChanged'; }
}

/** claims decodes a JWT's payload without verifying it (the server verifies). */
export function claims(token) {
  try {
    const p = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const json = decodeURIComponent([...atob(p)].map((c) => '%' + c.charCodeAt(0).toString(16).padStart(2, '0')).join(''));
    return JSON.parse(json);
  } catch {
    return {};
  }
}

// A wakeable sleep: the poller waits on it and the stream wakes it.
class Waker {
  constructor() { this._wake = null; }
  wait(ms, signal) {
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const done = () => {
        clearTimeout(t);
        signal?.removeEventListener('abort', done);
        if (this._wake === done) this._wake = null;
        resolve();
      };
      const t = setTimeout(done, ms);
      this._wake = done;
      signal?.addEventListener('abort', done, { once: true });
    });
  }
  wake() { this._wake?.(); }
}

/**
 * Connection follows a tenant's change log for a page. Listen with the
 * callbacks given to connect, or with addEventListener for 'event', 'state',
 * 'reset' and 'write' (a queued write settled: detail {key, ok, status, data,
 * problem, label}).
 */
export class Connection extends EventTarget {
  constructor(o = {}) {
    super();
    if (!o.token && !o.getToken) throw new TypeError('connect: token or getToken is required');
    this.baseUrl = (o.baseUrl || globalThis.location?.origin || '').replace(/\/$/, '');
    this._getToken = o.getToken || (async () => o.token);
    this.topics = o.topics && o.topics.length ? [...o.topics].sort() : null;
    this.cursor = Number.isInteger(o.since) ? o.since : null;
    // position is the cursor with its event's tag ("8.k3f9a2q1", the
    // stream's event id, or a poll's "position"), when known: resuming
    // from it, a client learns of a restored database (a reset) instead of
    // resuming silently in another history of the log.
    this.position = null;
    this.heartbeat = o.heartbeat || 15000; // the server's HEARTBEAT, in ms
    this.onEvent = o.onEvent; this.onReset = o.onReset; this.onState = o.onState;
    this.state = 'offline';
    this.settled = false; // false until a first state is known ("connecting")
    this.leader = false;
    this.transport = null; // leader: 'stream' | 'poll' | 'longpoll'
    this.queued = 0; // writes waiting in the outbox
    this.tabId = randomId();
    this._abort = new AbortController();
    this._undo = new Map(); // Idempotency-Key → undo of an optimistic change
    this._syncing = null;
    this._closed = false;
    this._ready = this._start().catch((err) => console.error('clinicpulse: start failed', err));
  }

  // ---------------------------------------------------------------- setup

  async _start() {
    const identity = identityOf(await this._getToken(), this.baseUrl);
    this.identity = identity;
    // Whoever used this browser before: their unsent writes are theirs alone.
    await outbox.keepOnly(identity).catch(() => {});
    this.name = 'clinicpulse:' + identity + '|' + (this.topics ? this.topics.join(',') : '*');
    if (typeof BroadcastChannel === 'function') {
      this._bc = new BroadcastChannel(this.name);
      this._bc.onmessage = (m) => this._onMessage(m.data);
      this._outboxBc = new BroadcastChannel('clinicpulse-outbox:' + identity);
      this._outboxBc.onmessage = (m) => this._onOutboxMessage(m.data);
    }
    const signal = this._abort.signal;
    addEventListener('online', this._onOnline = () => { this._recompute(); this._kick(); this._replay(); }, { signal });
    addEventListener('offline', this._onOffline = () => this._recompute(), { signal });
    this._outboxTimer = setInterval(async () => {
      await this._checkIdentity();
      if (this.queued) this._replay();
    }, 5000);
    this._countQueued();
    if (!globalThis.navigator?.locks || !this._bc) {
      this._lead(); // no tab sharing available: every tab leads
      return;
    }
    navigator.locks.request(this.name, { ifAvailable: true }, (lock) => {
      if (lock) return this._lead();
      this._follow();
      // Wait in line; the browser grants the lock when the leader tab goes.
      return navigator.locks.request(this.name, { signal }, () => this._lead()).catch(() => {});
    }).catch(() => {});
  }

  /** close stops following, leaves leadership to another tab and closes channels. */
  close() {
    if (this._closed) return;
    this._closed = true;
    this._abort.abort();
    this._stopTransport();
    this._leadDone?.();
    clearInterval(this._outboxTimer);
    this._bc?.close();
    this._outboxBc?.close();
  }

  // ---------------------------------------------------------------- events

  _post(msg) { try { this._bc?.postMessage(msg); } catch { /* closed */ } }

  // _deliver hands an event to the page unless it was delivered already.
  _deliver(ev, id) {
    if (!ev || !Number.isInteger(ev.seq)) return false;
    if (this.cursor !== null && ev.seq <= this.cursor) return false;
    this.cursor = ev.seq;
    this.position = typeof id === 'string' && id.startsWith(`${ev.seq}.`) ? id : null;
    if (this.leader) {
      this._buf.push(ev);
      if (this._buf.length > BUFFER_MAX) this._bufBase = this._buf.shift().seq;
      this._post({ t: 'event', ev });
    }
    try { this.onEvent?.(ev); } catch (err) { console.error('clinicpulse: onEvent', err); }
    this.dispatchEvent(new CustomEvent('event', { detail: ev }));
    return true;
  }

  _setState(state) {
    const changed = state !== this.state || !this.settled;
    this.state = state;
    this.settled = true;
    if (this.leader) this._post({ t: 'state', state, transport: this.transport });
    if (!changed) return;
    try { this.onState?.(state); } catch (err) { console.error('clinicpulse: onState', err); }
    this.dispatchEvent(new CustomEvent('state', { detail: state }));
    if (state !== 'offline') this._replay();
  }

  _onMessage(m) {
    if (!m || this._closed) return;
    switch (m.t) {
      case 'event':
        if (this.leader) return;
        if (this._syncing) this._syncing.buf.push(m.ev);
        else if (this._resetting) this._resetBuf.push(m.ev);
        else this._deliver(m.ev);
        return;
      case 'state':
        if (this.leader) return;
        this.transport = m.transport;
        this._setState(m.state);
        return;
      case 'leader':
        if (!this.leader) this._requestSync();
        return;
      case 'sync':
        if (this.leader) this._answerSync(m);
        return;
      case 'sync-reply':
        if (!this.leader && this._syncing && this._syncing.id === m.id) this._finishSync(m);
        return;
      case 'reset':
        if (!this.leader) this._localReset(null).then(() => this._requestSync());
    }
  }

  // ---------------------------------------------------------------- follower

  _follow() {
    this.leader = false;
    this._requestSync();
  }

  // _requestSync asks the leader for the events after our cursor; events
  // broadcast meanwhile wait in a buffer so that order is kept.
  _requestSync() {
    if (this.leader || this._closed) return;
    const id = randomId();
    const prev = this._syncing;
    this._syncing = { id, buf: prev ? prev.buf : [] };
    clearTimeout(this._syncTimer);
    // No answer (the leader is starting, or gone): ask again.
    this._syncTimer = setTimeout(() => { if (this._syncing?.id === id) this._requestSync(); }, 2000);
    this._post({ t: 'sync', id, since: this.cursor });
  }

  _answerSync(m) {
    const reply = { t: 'sync-reply', id: m.id, head: this.cursor, state: this.state, transport: this.transport };
    if (m.since === null || m.since === undefined) {
      reply.complete = true; reply.events = [];
    } else if (this._bufBase !== null && m.since >= this._bufBase) {
      reply.complete = true; reply.events = this._buf.filter((e) => e.seq > m.since);
    } else {
      reply.complete = false; reply.events = [];
    }
    this._post(reply);
    this._post({ t: 'state', state: this.state, transport: this.transport });
  }

  async _finishSync(m) {
    const s = this._syncing;
    clearTimeout(this._syncTimer);
    if (this.cursor === null && m.head !== null) this.cursor = m.head; // joined "from now"
    if (!m.complete && m.head !== null && this.cursor !== null && this.cursor < m.head) {
      // Behind the leader's memory: fetch the gap from the log ourselves.
      try {
        await this._catchUp(m.head);
      } catch (err) {
        if (err instanceof ProblemError && err.status === 410) {
          this._syncing = null;
          await this._localReset(null);
          this._requestSync();
          return;
        }
        setTimeout(() => this._requestSync(), backoff(1));
        return;
      }
    }
    if (this._syncing !== s) return;
    this._syncing = null;
    for (const ev of m.events) this._deliver(ev);
    for (const ev of s.buf) this._deliver(ev);
    if (m.state) { this.transport = m.transport; this._setState(m.state); }
  }

  // _catchUp reads /api/v1/events from the cursor up to head (followers only).
  async _catchUp(head) {
    while (this.cursor < head && !this._closed) {
      const res = await this._fetch(this._eventsUrl({ limit: 500 }), {});
      if (!res.ok) throw await problemOf(res);
      const body = await res.json();
      for (const ev of body.events || []) this._deliver(ev);
      if (Number.isInteger(body.cursor) && body.cursor > this.cursor) this.cursor = body.cursor;
      this._positionFrom(body);
      if (!body.has_more) break;
    }
  }

  // ---------------------------------------------------------------- leader

  _lead() {
    if (this._closed) return undefined;
    this.leader = true;
    this._syncing = null;
    clearTimeout(this._syncTimer);
    this._buf = [];
    this._bufBase = this.cursor;
    this._post({ t: 'leader', tab: this.tabId });
    this.dispatchEvent(new CustomEvent('leader'));
    this._startTransport();
    return new Promise((resolve) => { this._leadDone = resolve; });
  }

  _startTransport() {
    this._tp = new AbortController();
    this._waker = new Waker();
    this._streamWaker = new Waker();
    this._streamFailures = 0;
    this._stream = null;
    this._lastPollOk = null;
    this._proven = false;
    this._buffered = false;
    this._wait = 25;
    this._streamLoop(this._tp.signal);
    this._pollLoop(this._tp.signal);
  }

  _stopTransport() {
    this._tp?.abort();
    this._closeStream();
  }

  _kick() {
    this._streamWaker?.wake();
    this._waker?.wake();
  }

  _closeStream() {
    const s = this._stream;
    if (!s) return;
    this._stream = null;
    clearTimeout(s.openTimer); clearTimeout(s.proofTimer); clearTimeout(s.watchdog);
    s.es.close();
  }

  // _recompute derives the state: live while a trusted stream is open,
  // fallback while polls succeed, offline otherwise.
  _recompute() {
    if (!this.leader) return;
    const s = this._stream;
    let state;
    if (globalThis.navigator?.onLine === false) state = 'offline';
    else if (s && s.open && !s.suspect) state = 'live';
    else if (this._lastPollOk) state = 'fallback';
    else if (this._lastPollOk === null && !this._streamFailures) return; // still starting
    else state = 'offline';
    this.transport = state === 'live' ? 'stream' : state === 'fallback' ? (this._buffered ? 'longpoll' : 'poll') : null;
    this._setState(state);
  }

  async _streamLoop(signal) {
    while (!signal.aborted) {
      if (globalThis.navigator?.onLine === false) {
        await this._streamWaker.wait(30000, signal);
        continue;
      }
      const ended = await this._runStream(signal);
      if (signal.aborted) return;
      // A stream that stayed up a while was healthy (e.g. STREAM_MAX_DURATION):
      // resume at once. Otherwise back off: 1, 2, 4, 8, 16 s.
      if (ended.healthy) this._streamFailures = 0;
      else this._streamFailures++;
      this._recompute();
      const delay = ended.healthy ? 200 + Math.random() * 500
        : this._buffered ? Math.max(backoff(this._streamFailures), 4 * this.heartbeat)
          : backoff(this._streamFailures - 1);
      await this._streamWaker.wait(delay, signal);
    }
  }

  // _runStream opens one EventSource with a fresh ticket and resolves when it
  // ends; {healthy} tells whether it delivered for a while.
  async _runStream(signal) {
    let ticket;
    try {
      const res = await this._fetch('/api/v1/stream/tickets', { method: 'POST' }, signal);
      if (!res.ok) throw await problemOf(res);
      ticket = (await res.json()).ticket;
    } catch (err) {
      if (err instanceof ProblemError && err.status === 401) this._authFailed(err);
      return { healthy: false };
    }
    if (signal.aborted) return { healthy: false };
    const q = new URLSearchParams({ ticket });
    if (this.cursor !== null) q.set('since', this._since());
    if (this.topics) q.set('topics', this.topics.join(','));
    return new Promise((resolve) => {
      const es = new EventSource(`${this.baseUrl}/api/v1/stream?${q}`);
      const s = { es, open: false, suspect: this._buffered, openedAt: 0, delivered: 0, visibleHeartbeats: false };
      this._stream = s;
      const hb2 = 2 * this.heartbeat;
      const end = () => {
        signal.removeEventListener('abort', end);
        if (this._stream === s) this._closeStream(); else es.close();
        const healthy = s.open && !s.suspect && Date.now() - s.openedAt > hb2;
        if (s.open) this._waker?.wake(); // poll at once: the stream is gone
        resolve({ healthy });
      };
      signal.addEventListener('abort', end, { once: true });
      // Nothing at all within two heartbeat periods: a proxy holds the response.
      s.openTimer = setTimeout(() => this._bufferingDetected(s, 'the stream did not open', end), hb2);
      const armWatchdog = () => {
        if (!s.visibleHeartbeats) return;
        clearTimeout(s.watchdog);
        s.watchdog = setTimeout(() => this._bufferingDetected(s, 'no heartbeat', end), hb2);
      };
      es.onopen = () => {
        clearTimeout(s.openTimer);
        s.open = true;
        s.openedAt = Date.now();
        this._streamFailures = 0;
        this._recompute();
        this._waker?.wake(); // poll now: the poller's interval depends on the stream
      };
      // Every error closes the EventSource: its own reconnect would re-send
      // the spent ticket and get 401.
      es.onerror = () => end();
      const onFrame = (e) => {
        let ev;
        try { ev = JSON.parse(e.data); } catch { return; }
        armWatchdog();
        s.delivered++;
        if (s.proof && ev.seq >= s.proof.seq) { clearTimeout(s.proofTimer); s.proof = null; }
        if (this._resetting) { this._resetBuf.push(ev); return; }
        if (this._deliver(ev, e.lastEventId) || this.cursor >= ev.seq) this._prove(s);
      };
      for (const type of EVENT_TYPES) es.addEventListener(type, onFrame);
      for (const type of HEARTBEAT_TYPES) {
        es.addEventListener(type, () => { s.visibleHeartbeats = true; armWatchdog(); this._prove(s); });
      }
      es.addEventListener('reset', (e) => {
        let hint = null;
        try { const d = JSON.parse(e.data || 'null'); hint = Number.isInteger(d?.cursor) ? d.cursor : null; } catch { /* no hint */ }
        end();
        this._reset(hint);
      });
    });
  }

  // _prove marks the stream trusted: it delivered something first-hand.
  _prove(s) {
    if (this._stream !== s) return;
    this._proven = true;
    if (s.suspect) {
      s.suspect = false;
      this._buffered = false;
      this._recompute();
      this._waker?.wake();
    }
  }

  // _bufferingDetected: the stream does not flush; long-poll instead and try
  // the stream again later.
  _bufferingDetected(s, why, end) {
    if (this._stream !== s) return;
    console.warn(`clinicpulse: ${why} within ${2 * this.heartbeat} ms; a proxy may be buffering — long-polling`);
    this._buffered = true;
    s.suspect = true;
    this._recompute();
    this._waker?.wake();
    end();
  }

  // _since is the cursor to resume from: the tagged position when it is the
  // cursor's, else the plain seq (resumed unchecked).
  _since() {
    const p = this.position;
    return typeof p === 'string' && p.startsWith(`${this.cursor}.`) ? p : String(this.cursor);
  }

  // _positionFrom takes a poll body's tagged "position" when its cursor is ours.
  _positionFrom(body) {
    if (Number.isInteger(body.cursor) && body.cursor === this.cursor && typeof body.position === 'string' &&
      body.position.startsWith(`${body.cursor}.`)) this.position = body.position;
  }

  _eventsUrl(extra) {
    const q = new URLSearchParams();
    if (this.cursor !== null) q.set('since', this._since());
    if (this.topics) q.set('topics', this.topics.join(','));
    for (const [k, v] of Object.entries(extra)) q.set(k, String(v));
    return `/api/v1/events?${q}`;
  }

  // _findHead learns the log's head for a connection made without a cursor
  // ("from now"): the queue board, which every role may read, answers
  // {"boards":[…],"cursor":<head>} with a 200 (a cursor ahead of the log
  // would answer the head too, but as a 410 the console reports as an error).
  // (A snapshot's cursor is better: pass it as since.)
  async _findHead(signal) {
    while (this.cursor === null && !signal.aborted) {
      try {
        const res = await this._fetch('/api/v1/queue/board', {}, signal);
        const body = await res.json().catch(() => ({}));
        const head = res.ok ? body.cursor : undefined;
        if (Number.isInteger(head) && this.cursor === null) {
          this.cursor = head;
          this._bufBase = head;
        }
        this._pollOk(res.status < 500);
        if (this.cursor !== null) return;
      } catch {
        this._pollOk(false);
      }
      await this._waker.wait(backoff(2), signal);
    }
  }

  async _pollLoop(signal) {
    let etag = null; let etagUrl = null; let failures = 0;
    if (this.cursor === null) await this._findHead(signal);
    while (!signal.aborted) {
      const s = this._stream;
      const live = !!(s && s.open && !s.suspect);
      const long = !live && this._buffered;
      const extra = { limit: 500, stream: live ? 'live' : 'down' };
      if (long) extra.wait = this._wait;
      const url = this._eventsUrl(extra);
      const headers = {};
      if (etag && etagUrl === url) headers['If-None-Match'] = etag;
      let interval = live ? 30000 : 5000;
      const started = Date.now();
      try {
        if (globalThis.navigator?.onLine === false) throw new TypeError('offline');
        const res = await this._fetch(url, { headers }, signal);
        const advised = Number(res.headers.get('X-Poll-Interval'));
        if (advised > 0) interval = advised * 1000;
        if (res.status === 304) {
          this._pollOk(true);
        } else if (res.ok) {
          etag = res.headers.get('ETag'); etagUrl = url;
          const body = await res.json();
          this._pollOk(true);
          this._fromPoll(body.events || [], live);
          if (Number.isInteger(body.cursor) && (this.cursor === null || body.cursor > this.cursor) && !this._resetting) {
            this.cursor = body.cursor;
          }
          if (!this._resetting) this._positionFrom(body);
          if (body.has_more) interval = 0;
        } else if (res.status === 410) {
          await this._reset(null);
          interval = 0;
        } else if (res.status === 429) {
          this._pollOk(true);
          interval = Math.max(interval, (Number(res.headers.get('Retry-After')) || 5) * 1000);
        } else if (res.status === 401) {
          this._authFailed(await problemOf(res));
          this._pollOk(false);
          interval = 30000;
        } else {
          throw await problemOf(res);
        }
        failures = 0;
        if (long && interval !== 0) interval = 0; // long-poll again at once
      } catch (err) {
        if (signal.aborted) return;
        failures++;
        interval = live ? 30000 : Math.min(backoff(failures - 1), 5000);
        if (long && Date.now() - started > 1500) {
          // A long-poll cut after a while (a proxy's timeout, 502/504): ask
          // again at once with a shorter wait; the server is there.
          this._wait = Math.max(2, Math.floor(this._wait / 2));
          interval = 0;
          failures = 0;
        } else {
          this._pollOk(false);
        }
      }
      if (!signal.aborted && interval > 0) {
        // While a freshly opened stream is on probation, check it every heartbeat.
        if (live && !this._proven) interval = Math.min(interval, this.heartbeat);
        await this._waker.wait(interval, signal);
      }
    }
  }

  _pollOk(ok) {
    const was = this._lastPollOk;
    this._lastPollOk = ok;
    if (was !== ok || !this.settled) this._recompute();
  }

  // _fromPoll delivers polled events. When the stream is live and the poll
  // found events first, the stream must deliver them within two heartbeat
  // periods, or it is behind a buffering proxy.
  _fromPoll(events, live) {
    if (this._resetting) { this._resetBuf.push(...events); return; }
    let newest = null;
    for (const ev of events) if (this._deliver(ev)) newest = ev;
    const s = this._stream;
    if (live && newest && s && !s.proof) {
      s.proof = { seq: newest.seq };
      s.proofTimer = setTimeout(() => {
        if (this._stream === s && s.proof) this._bufferingDetected(s, 'the stream missed polled events', () => {
          if (this._stream === s) this._closeStream();
        });
      }, 2 * this.heartbeat);
    }
  }

  _authFailed(err) {
    this.dispatchEvent(new CustomEvent('autherror', { detail: err }));
  }

  // ---------------------------------------------------------------- reset

  // _reset (leader): the cursor expired. Every tab refetches its snapshots.
  async _reset(hint) {
    this._post({ t: 'reset' });
    this._stopTransport();
    await this._localReset(hint);
    this._buf = [];
    this._bufBase = this.cursor;
    if (!this._closed && this.leader) this._startTransport();
  }

  async _localReset(hint) {
    if (this._resetting) return this._resetting;
    this._resetBuf = [];
    const run = async () => {
      let c = null;
      try { c = await this.onReset?.(); } catch (err) { console.error('clinicpulse: onReset', err); }
      this.dispatchEvent(new CustomEvent('reset'));
      this.cursor = Number.isInteger(c) ? c : hint;
      const pending = this._resetBuf;
      this._resetting = null;
      for (const ev of pending) this._deliver(ev);
    };
    this._resetting = run();
    return this._resetting;
  }

  // ---------------------------------------------------------------- HTTP

  // _fetch sends a request with the current token. A token of another
  // identity than the connection's moves the outbox to it first; with
  // owner set (a queued write's identity), a request that would carry
  // another identity's token is not sent (IdentityChanged).
  async _fetch(path, init = {}, signal, owner) {
    const token = await this._getToken();
    const id = identityOf(token, this.baseUrl);
    if (id !== this.identity) await this._identityChanged(id);
    if (owner !== undefined && owner !== id) throw new IdentityChanged();
    const headers = { ...(init.headers || {}), Authorization: `Bearer ${token}` };
    if (init.body !== undefined && !headers['Content-Type']) headers['Content-Type'] = 'application/json';
    return fetch(this.baseUrl + path, { ...init, headers, signal: signal || this._abort.signal, cache: 'no-store' });
  }

  /** get reads JSON from the API; it throws ProblemError on an error status. */
  async get(path) {
    const res = await this._fetch(path);
    if (!res.ok) throw await problemOf(res);
    return res.json();
  }

  /**
   * send writes through the API and resolves to {ok, status, data, problem}
   * — or {queued: true, key} when the write was stored for later (offline).
   * opts.ifMatch sends If-Match: "<version>"; opts.optimistic is a function
   * that changes the page at once and returns its undo, run with a visible
   * notice when the server answers 409 or 412; opts.label names the action
   * in notices.
   */
  async send(method, path, body, opts = {}) {
    await this._ready;
    const w = {
      key: randomId(), method: method.toUpperCase(), path, body: body === undefined ? null : body,
      ifMatch: opts.ifMatch ?? null, label: opts.label || `${method} ${path}`, identity: this.identity,
      createdAt: Date.now(), attempts: 0,
    };
    let undo = null;
    if (typeof opts.optimistic === 'function') {
      try { undo = opts.optimistic(); } catch (err) { console.error(err); }
    }
    if (typeof undo === 'function') this._undo.set(w.key, undo);
    const queue = async () => {
      await outbox.add(w);
      await this._countQueued();
      this._replay();
      return { queued: true, key: w.key, ok: true, status: 0 };
    };
    const waiting = await outbox.count(this.identity).catch(() => 0);
    if (globalThis.navigator?.onLine === false || this.queued > 0 || waiting > 0) return queue();
    let res;
    try {
      res = await this._request(w);
    } catch (err) {
      if (err instanceof IdentityChanged) return { ok: false, status: 0, data: null, problem: { title: 'Not sent: signed in as someone else' } };
      // The network failed; the request may or may not have reached the
      // server. Keep it: the Idempotency-Key (or If-Match) makes the replay safe.
      w.attempts = 1;
      return queue();
    }
    if (res.status >= 500 || res.status === 429) return queue();
    return this._settle(w, await resultOf(res));
  }

  _request(w) {
    const headers = { 'Idempotency-Key': w.key };
    if (w.ifMatch !== null && w.ifMatch !== undefined) headers['If-Match'] = `"${w.ifMatch}"`;
    const init = { method: w.method, headers };
    if (w.body !== null && w.method !== 'GET' && w.method !== 'DELETE') init.body = JSON.stringify(w.body);
    return this._fetch(w.path, init, undefined, w.identity);
  }

  // _checkIdentity notices a token cleared or replaced while no request
  // is made (every request checks too).
  async _checkIdentity() {
    if (this._closed || this.identity === undefined) return;
    let token = '';
    try { token = await this._getToken(); } catch { /* signed out */ }
    const id = identityOf(token, this.baseUrl);
    if (id !== this.identity) await this._identityChanged(id);
  }

  // _identityChanged: the token was cleared or is now another identity's.
  // The previous identity's queued writes are deleted (never replayed under
  // the new token), and the outbox is the new identity's from now on.
  async _identityChanged(next) {
    if (next === this.identity) return;
    const previous = this.identity;
    this.identity = next;
    this._undo.clear();
    this._outboxBc?.close();
    this._outboxBc = null;
    if (next && typeof BroadcastChannel === 'function') {
      this._outboxBc = new BroadcastChannel('clinicpulse-outbox:' + next);
      this._outboxBc.onmessage = (m) => this._onOutboxMessage(m.data);
    }
    let discarded = 0;
    try { discarded = await outbox.keepOnly(next); } catch { /* no IndexedDB */ }
    await this._countQueued();
    this.dispatchEvent(new CustomEvent('identity', { detail: { previous, identity: next, discarded } }));
  }

  // _settle finishes a write: undo the optimistic change on 409/412 and tell
  // every tab (the page shows a notice).
  _settle(w, result) {
    const detail = { key: w.key, label: w.label, method: w.method, path: w.path, queuedBefore: !!w.queued, ...result };
    const undo = this._undo.get(w.key);
    this._undo.delete(w.key);
    if (!result.ok && (result.status === 409 || result.status === 412) && undo) {
      try { undo(); } catch (err) { console.error(err); }
      detail.rolledBack = true;
    }
    this.dispatchEvent(new CustomEvent('write', { detail }));
    return result;
  }

  async _countQueued() {
    try {
      const n = await outbox.count(this.identity);
      if (n !== this.queued) {
        this.queued = n;
        this.dispatchEvent(new CustomEvent('queued', { detail: n }));
      }
    } catch { /* no IndexedDB */ }
  }

  // _replay sends the outbox in order, one tab at a time.
  async _replay() {
    if (this._closed || !this.identity || this._replaying) return;
    if (globalThis.navigator?.onLine === false) return;
    this._replaying = true;
    try {
      const run = async () => {
        for (;;) {
          const w = await outbox.first(this.identity);
          if (!w || this._closed) return;
          if (w.identity !== this.identity) return;
          let res;
          try {
            res = await this._request(w);
          } catch (err) {
            if (err instanceof IdentityChanged) return; // deleted with its identity's outbox
            w.attempts++; await outbox.put(w); return; // still offline
          }
          let result = await resultOf(res);
          if (res.status >= 500 || res.status === 429) { w.attempts++; await outbox.put(w); return; }
          if (res.status === 412 && w.method === 'PATCH') result = await this._reconcile(w, result);
          await outbox.delete(w.id);
          await this._countQueued();
          const msg = { t: 'write', identity: this.identity, w: { key: w.key, label: w.label, method: w.method, path: w.path }, result };
          try { this._outboxBc?.postMessage(msg); } catch { /* closed */ }
          this._onOutboxMessage(msg);
        }
      };
      if (globalThis.navigator?.locks) await navigator.locks.request('clinicpulse-outbox:' + this.identity, run);
      else await run();
    } catch (err) {
      console.warn('clinicpulse: replay', err);
    } finally {
      this._replaying = false;
      this._countQueued();
    }
  }

  // _reconcile: a replayed PATCH met 412. If an earlier attempt reached the
  // server (the response was lost), the record already holds the change:
  // that is success, not a conflict.
  async _reconcile(w, result) {
    if (!w.attempts || !w.body) return result;
    try {
      const rec = await this.get(w.path);
      const applied = Object.entries(w.body).every(([k, v]) => JSON.stringify(rec[k]) === JSON.stringify(v));
      if (applied) return { ok: true, status: 200, data: rec, problem: null, reconciled: true };
    } catch { /* keep the 412 */ }
    return result;
  }

  _onOutboxMessage(m) {
    if (!m || m.t !== 'write' || m.identity !== this.identity) return;
    this._countQueued();
    this._settle({ ...m.w, queued: true }, m.result);
  }
}

async function problemOf(res) {
  let p = null;
  try { p = await res.json(); } catch { /* not JSON */ }
  return new ProblemError(res.status, p);
}

async function resultOf(res) {
  let data = null;
  if (res.status !== 204) { try { data = await res.json(); } catch { /* empty */ } }
  if (res.ok) return { ok: true, status: res.status, data, problem: null };
  return { ok: false, status: res.status, data: null, problem: data || { title: `HTTP ${res.status}` } };
}

// ------------------------------------------------------------------ outbox

// outbox keeps queued writes in IndexedDB, in the order they were made.
const outbox = {
  _db: null,
  open() {
    if (this._db) return this._db;
    this._db = new Promise((resolve, reject) => {
      const req = indexedDB.open('clinicpulse-outbox', 1);
      req.onupgradeneeded = () => {
        const st = req.result.createObjectStore('writes', { keyPath: 'id', autoIncrement: true });
        st.createIndex('identity', 'identity');
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    return this._db;
  },
  async _tx(mode, fn) {
    const db = await this.open();
    return new Promise((resolve, reject) => {
      const tx = db.transaction('writes', mode);
      let out;
      Promise.resolve(fn(tx.objectStore('writes'), (v) => { out = v; })).catch(reject);
      tx.oncomplete = () => resolve(out);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  },
  add(w) { return this._tx('readwrite', (st) => { st.add(w); }); },
  // keepOnly deletes every write that is not identity's ('' deletes all),
  // and resolves to how many it deleted.
  keepOnly(identity) {
    return this._tx('readwrite', (st, set) => {
      let n = 0;
      const r = st.openCursor();
      r.onsuccess = () => {
        const c = r.result;
        if (!c) return set(n);
        if (!identity || c.value.identity !== identity) { c.delete(); n++; }
        c.continue();
      };
    });
  },
  put(w) { return this._tx('readwrite', (st) => { st.put(w); }); },
  delete(id) { return this._tx('readwrite', (st) => { st.delete(id); }); },
  count(identity) {
    return this._tx('readonly', (st, set) => {
      const r = st.index('identity').count(IDBKeyRange.only(identity));
      r.onsuccess = () => set(r.result);
    });
  },
  first(identity) {
    // Lowest id first: the order the writes were made in.
    return this._tx('readonly', (st, set) => {
      const r = st.openCursor();
      r.onsuccess = () => {
        const c = r.result;
        if (!c) return set(null);
        if (c.value.identity === identity) return set(c.value);
        c.continue();
      };
    });
  },
};

/**
 * clearOutbox deletes every queued write in this browser, of every
 * identity: call it when the user signs out.
 */
export function clearOutbox() {
  return outbox.keepOnly('');
}

// ------------------------------------------------------------------ UI

const BADGE = {
  live: ['Live', 'Receiving updates as they happen'],
  fallback: ['Fallback', 'The live stream is unavailable; checking for updates regularly'],
  offline: ['Offline', 'No connection to the server; changes will sync when it returns'],
};

/**
 * statusBadge returns a small element showing the connection's state: green
 * "Live", amber "Fallback", red "Offline" (plus queued writes), and keeps it
 * current. Style it with the cp-badge classes (see style.css).
 */
export function statusBadge(conn) {
  const el = document.createElement('span');
  el.className = 'cp-badge cp-badge--connecting';
  el.setAttribute('role', 'status');
  el.setAttribute('aria-live', 'polite');
  const dot = document.createElement('span');
  dot.className = 'cp-badge__dot';
  const label = document.createElement('span');
  label.className = 'cp-badge__label';
  el.append(dot, label);
  const render = () => {
    const [text, title] = conn.settled ? BADGE[conn.state] : ['Connecting…', 'Connecting to the server'];
    el.className = `cp-badge cp-badge--${conn.settled ? conn.state : 'connecting'}`;
    el.dataset.state = conn.settled ? conn.state : 'connecting';
    const q = conn.queued ? ` · ${conn.queued} to sync` : '';
    label.textContent = text + q;
    const how = conn.transport === 'longpoll' ? ' (long-polling)' : conn.transport === 'poll' ? ' (polling)' : '';
    el.title = title + how;
  };
  conn.addEventListener('state', render);
  conn.addEventListener('queued', render);
  render();
  return el;
}
