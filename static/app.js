// Shared page code of the ClinicPulse dashboards: sign-in, the page shell
// (header, live badge, clock), notices, a small record store and helpers.
//
// Sign-in. A page needs a ClinicPulse JWT. It looks, in order, at:
//  1. the URL fragment: /static/frontdesk.html#token=<jwt> — `make run` prints
//     such links. A fragment never reaches a server or its logs; the page
//     moves the token to sessionStorage and removes it from the address bar.
//     Setting a new fragment later (hashchange) swaps the token in place, so
//     an embedding app can refresh a long-lived display's token.
//  2. a message from the embedding window (an iframe's parent, same origin, or
//     an origin listed in <meta name="clinicpulse-embed-origins" content="…">):
//        iframe.contentWindow.postMessage({ type: 'clinicpulse:token', token }, origin)
//  3. sessionStorage['clinicpulse.token'] (same-origin apps may set it before
//     opening the page), or window.CLINICPULSE_TOKEN set by a script that
//     runs before the page's module.
// An application that does not want these pages can use the client directly:
//     import { connect } from '/static/clinicpulse.js';
//     connect({ getToken: async () => myApp.currentToken(), onEvent, onReset });
// Optional fragment parameters: hb=<seconds> tells the client the server's
// HEARTBEAT when it is not the default 15 s.

import { connect, statusBadge, claims, clearOutbox } from './clinicpulse.js';
import morphdom from './vendor/morphdom-esm.js';

const TOKEN_KEY = 'clinicpulse.token';
const HB_KEY = 'clinicpulse.heartbeat';

// ------------------------------------------------------------------ sign-in

function readFragment() {
  const h = location.hash.replace(/^#/, '');
  if (!h) return false;
  const p = new URLSearchParams(h);
  const token = p.get('token');
  if (p.get('hb')) sessionStorage.setItem(HB_KEY, String(Number(p.get('hb')) * 1000));
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  // Remove the token from the address bar and history.
  history.replaceState(null, '', location.pathname + location.search);
  return !!token;
}

function embedOrigins() {
  const m = document.querySelector('meta[name="clinicpulse-embed-origins"]');
  return new Set([location.origin, ...(m ? m.content.split(/[\s,]+/).filter(Boolean) : [])]);
}

/** token returns the current JWT ('' when signed out). */
export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || globalThis.CLINICPULSE_TOKEN || '';
}

/** heartbeat returns the server heartbeat the page was told about, in ms. */
export function heartbeat() {
  return Number(sessionStorage.getItem(HB_KEY)) || undefined;
}

/**
 * signIn resolves to {token, claims} once a token is known, showing a
 * sign-in card meanwhile. onChange runs when the token is replaced later.
 */
export function signIn({ roles, onChange } = {}) {
  readFragment();
  addEventListener('hashchange', () => { if (readFragment()) onChange?.(token()); });
  const origins = embedOrigins();
  addEventListener('message', (e) => {
    if (!origins.has(e.origin) || e.data?.type !== 'clinicpulse:token' || typeof e.data.token !== 'string') return;
    sessionStorage.setItem(TOKEN_KEY, e.data.token);
    onChange?.(e.data.token);
  });
  return new Promise((resolve) => {
    const check = () => {
      const t = token();
      if (!t) return false;
      const c = claims(t);
      if (roles && !roles.includes(c.role)) {
        showSignIn(`This page is for ${roles.join(' or ')} accounts; the link you used is for “${c.role || 'unknown'}”.`);
        return false;
      }
      if (c.exp && c.exp * 1000 < Date.now()) {
        showSignIn('Your sign-in link has expired. Ask for a new one.');
        return false;
      }
      resolve({ token: t, claims: c });
      return true;
    };
    if (check()) return;
    if (!document.querySelector('.signin')) showSignIn();
    addEventListener('hashchange', () => { if (check()) location.reload(); });
    addEventListener('message', () => setTimeout(() => { if (check()) location.reload(); }, 0));
  });
}

function showSignIn(reason) {
  document.body.classList.add('is-signin');
  document.body.innerHTML = `
    <main class="signin">
      <div class="signin__card card">
        ${logo()}
        <h1>Sign in to ClinicPulse</h1>
        <p class="muted">${esc(reason || 'Open this dashboard from the link your clinic gave you, or paste your access token below.')}</p>
        <form class="stack">
          <label class="field"><span>Access token</span>
            <textarea name="token" rows="4" required placeholder="eyJhbGciOi…" autocomplete="off" spellcheck="false"></textarea></label>
          <button class="btn btn--primary" type="submit">Continue</button>
        </form>
      </div>
    </main>`;
  document.querySelector('.signin form').addEventListener('submit', (e) => {
    e.preventDefault();
    const t = new FormData(e.target).get('token').trim();
    if (t) { sessionStorage.setItem(TOKEN_KEY, t); location.reload(); }
  });
}

/** signOut forgets the token and this browser's unsent writes. */
export async function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  await clearOutbox().catch(() => {});
  location.reload();
}

// ------------------------------------------------------------------ HTTP

/** apiGet reads JSON with the page's token; throws an Error with .status. */
export async function apiGet(path) {
  const res = await fetch(path, { headers: { Authorization: `Bearer ${token()}` }, cache: 'no-store' });
  if (!res.ok) {
    let p = {};
    try { p = await res.json(); } catch { /* not JSON */ }
    const err = new Error(p.detail || p.title || `HTTP ${res.status}`);
    err.status = res.status;
    throw err;
  }
  return res.json();
}

/** listAll reads every page of a list; resolves {items, cursor}. */
export async function listAll(path) {
  let items = [];
  let cursor = null;
  let after = '';
  for (;;) {
    const sep = path.includes('?') ? '&' : '?';
    const page = await apiGet(`${path}${sep}limit=1000${after ? `&after=${encodeURIComponent(after)}` : ''}`);
    items = items.concat(page.items || []);
    if (cursor === null || page.cursor < cursor) cursor = page.cursor;
    if (!page.next) break;
    after = page.next;
  }
  return { items, cursor };
}

// ------------------------------------------------------------------ shell

export function logo() {
  return `<span class="logo" aria-hidden="true"><svg viewBox="0 0 32 32" width="32" height="32">
    <rect width="32" height="32" rx="9" fill="currentColor"/>
    <path d="M6 17h5l2.5-6 4 12 3-8 1.5 2H26" fill="none" stroke="#fff" stroke-width="2.4" stroke-linecap="round" stroke-linejoin="round"/></svg></span>`;
}

/**
 * shell builds the page header and returns its parts. The badge slot is
 * filled by live().
 */
export function shell({ title, subtitle = '', claims: c = {}, extra = '' }) {
  document.body.classList.remove('is-signin');
  const header = document.createElement('header');
  header.className = 'topbar';
  header.innerHTML = `
    <a class="brand" href="/static/index.html">${logo()}<span class="brand__name">ClinicPulse</span></a>
    <div class="topbar__title"><h1>${esc(title)}</h1>${subtitle ? `<span class="topbar__sub">${esc(subtitle)}</span>` : ''}</div>
    <div class="topbar__extra">${extra}</div>
    <div class="topbar__right">
      <span class="clinic-chip" title="Clinic">${esc(prettyTenant(c.tenant_id))}</span>
      <time class="clock" data-clock></time>
      <span data-badge></span>
    </div>`;
  document.body.prepend(header);
  startClock(header.querySelector('[data-clock]'));
  return header;
}

export function prettyTenant(t = '') {
  return t.replace(/[-_.]+/g, ' ').replace(/\b\w/g, (m) => m.toUpperCase()) || 'Clinic';
}

function startClock(el, opts = { hour: '2-digit', minute: '2-digit' }) {
  const tick = () => { el.textContent = new Date().toLocaleTimeString([], opts); };
  tick();
  setInterval(tick, 1000 * 10);
}

/**
 * live connects the page: the badge, notices for queued and rejected writes,
 * and an expired-sign-in banner. Returns the connection.
 */
export function live(opts) {
  const conn = connect({ token: undefined, getToken: async () => token(), heartbeat: heartbeat(), ...opts });
  const slot = document.querySelector('[data-badge]');
  if (slot) slot.replaceWith(statusBadge(conn));
  conn.addEventListener('write', (e) => {
    const d = e.detail;
    if (d.ok && d.queuedBefore) toast(`Synced: ${d.label}`, 'ok');
    if (!d.ok && quiet.delete(d.label)) return; // the page shows this refusal itself
    if (!d.ok) {
      const why = d.status === 412 ? 'someone changed it first'
        : d.status === 409 ? (d.problem?.detail || 'it is no longer possible')
          : (d.problem?.detail || d.problem?.title || `error ${d.status}`);
      toast(`${d.rolledBack ? 'Undone' : 'Not saved'}: ${d.label} — ${why}.`, 'error');
    }
  });
  let lastQueued = 0;
  conn.addEventListener('queued', (e) => {
    if (e.detail === 0 && lastQueued > 0) toast('All offline changes are synced.', 'ok');
    lastQueued = e.detail;
  });
  conn.addEventListener('autherror', () => banner('Your sign-in has expired or was revoked. Open a fresh link to continue.'));
  // A hook for support and tests: the live connection of this page.
  globalThis.clinicpulse = { conn };
  return conn;
}

/**
 * perform sends a write through conn.send (same arguments and result) and
 * settles its optimistic change, whatever the answer:
 *  - accepted: the record in the answer replaces the change (Records.set);
 *  - refused (any 4xx: 409, 412, 422, 400, 403, 404…): the change is dropped
 *    and the page shows the newest version it knows from the server — events
 *    that arrived while the request was in flight — and the record is read
 *    again, so the page never falls back to the snapshot from before the click;
 *  - queued offline: a notice; it settles the same way when the write is
 *    finally sent (conn's 'write' event).
 * opts.quiet: no notice when the server refuses it (the page shows the
 * refusal where the user is, e.g. in a form); opts.label must be set.
 * opts.optimistic is what Records.optimistic returns (any function returning
 * an undo works: the undo runs on every refusal). opts.refresh: [records, id]
 * to read again after a refusal when there is no optimistic change.
 */
export async function perform(conn, method, path, body, opts = {}) {
  if (opts.quiet) quiet.add(opts.label);
  let undo = null;
  const o = opts.optimistic;
  const sendOpts = typeof o === 'function' ? { ...opts, optimistic: () => (undo = o()) } : opts;
  const r = await conn.send(method, path, body, sendOpts);
  if (opts.quiet && !r.queued) quiet.delete(opts.label);
  const settle = (res) => {
    if (typeof undo === 'function') {
      if (res.ok) undo.confirm?.(res.data);
      else undo();
    } else if (!res.ok && Array.isArray(opts.refresh)) {
      const [records, id] = opts.refresh;
      records.refresh(id, opts.refresh[2]);
    }
  };
  if (r.queued) {
    toast(`Offline — “${opts.label || 'change'}” will be sent when the connection returns.`, 'warn');
    laterOf(conn).set(r.key, settle);
  } else {
    settle(r);
  }
  return r;
}

// quiet holds the labels of writes whose refusal the page shows itself.
const quiet = new Set();

// laterOf: per connection, the settle step of each write queued offline, by
// Idempotency-Key, run when the connection reports the write's answer.
const later = new WeakMap();
function laterOf(conn) {
  let m = later.get(conn);
  if (!m) {
    m = new Map();
    later.set(conn, m);
    conn.addEventListener('write', (e) => {
      const f = m.get(e.detail.key);
      if (!f) return;
      m.delete(e.detail.key);
      f(e.detail);
    });
  }
  return m;
}

// ------------------------------------------------------------------ notices

export function toast(message, kind = 'info', ms = 6000) {
  let box = document.querySelector('.toasts');
  if (!box) {
    box = document.createElement('div');
    box.className = 'toasts';
    box.setAttribute('role', 'status');
    box.setAttribute('aria-live', 'polite');
    document.body.append(box);
  }
  const el = document.createElement('div');
  el.className = `toast toast--${kind}`;
  el.textContent = message;
  box.append(el);
  while (box.children.length > 4) box.firstChild.remove();
  setTimeout(() => el.remove(), ms);
}

export function banner(message) {
  let el = document.querySelector('.banner');
  if (!el) {
    el = document.createElement('div');
    el.className = 'banner';
    document.body.prepend(el);
  }
  el.textContent = message;
}

// ------------------------------------------------------------------ records

/**
 * Records keeps one resource's records by id in two layers:
 *  - the server's: the newest version the server has shown (a snapshot, an
 *    event, a write's answer or a read again). A version never replaces a
 *    newer one, so a replayed event or a slow read cannot take it back;
 *  - the page's optimistic changes, on top, while their writes are in flight.
 *    A change is dropped when its write is answered, and as soon as the
 *    server shows a version newer than the one it was made on (the write
 *    went through, or someone else changed the record first).
 * get() and all() answer the records as the page shows them (server version
 * plus pending changes; version is always the server's, for If-Match).
 * entity is the resource's path name: 'queue', 'appointments', …
 */
export class Records {
  constructor(entity, items = []) {
    this.entity = entity;
    this.map = new Map(); // id → the server's newest version
    this.changes = new Map(); // id → [{ base, fields }] optimistic, oldest first
    for (const r of items) this.map.set(r.id, r);
  }
  reset(items) {
    this.map.clear();
    for (const r of items) this.map.set(r.id, r);
    for (const id of this.changes.keys()) this._prune(id);
  }
  /** server returns the server's newest version of id, without pending changes. */
  server(id) { return this.map.get(id); }
  get(id) {
    const r = this.map.get(id);
    const c = this.changes.get(id);
    if (!r || !c) return r;
    return Object.assign({}, r, ...c.map((x) => x.fields));
  }
  all() { return [...this.map.keys()].map((id) => this.get(id)); }
  /** set takes a record from the server unless a newer version is known. */
  set(r) {
    const old = this.map.get(r.id);
    if (!old || (r.version ?? 0) >= (old.version ?? 0)) this.map.set(r.id, r);
    this._prune(r.id);
  }
  /** apply applies an event of this entity; reports whether it was one. */
  apply(ev) {
    if (ev.entity !== this.entity) return false;
    const old = this.map.get(ev.id);
    if (old && ev.version < old.version) return true;
    if (ev.type.endsWith('.deleted') || ev.data === null) {
      this.map.delete(ev.id);
      this.changes.delete(ev.id);
    } else {
      this.map.set(ev.id, ev.data);
      this._prune(ev.id);
    }
    return true;
  }
  // _prune drops the changes made on a version older than the server's.
  _prune(id) {
    const c = this.changes.get(id);
    if (!c) return;
    const v = this.map.get(id)?.version ?? Infinity;
    const keep = c.filter((x) => x.base >= v);
    if (keep.length) this.changes.set(id, keep);
    else this.changes.delete(id);
  }
  /**
   * refresh reads id again from the server (GET /api/v1/<entity>/<id>) and
   * takes it if it is newer; a 404 removes it. Then render(). Resolves to
   * the record shown, or undefined.
   */
  async refresh(id, render) {
    try {
      this.set(await apiGet(`/api/v1/${this.entity}/${encodeURIComponent(id)}`));
    } catch (err) {
      if (err.status === 404 || err.status === 410) { this.map.delete(id); this.changes.delete(id); }
    }
    render?.();
    return this.get(id);
  }
  /**
   * optimistic returns the `optimistic` step of perform(): it shows fields
   * on id at once (then render()) and returns the undo. The undo (run on any
   * refusal) reads the record again and then drops the change: the page
   * shows the newest version the server has shown (the read, or events that
   * came first), never the one from before the click. undo.confirm(record)
   * (run on success) takes the server's answer and drops the change.
   */
  optimistic(id, fields, render) {
    return () => {
      const r = this.map.get(id);
      if (!r) return undefined;
      const change = { base: r.version ?? 0, fields };
      this.changes.set(id, [...(this.changes.get(id) || []), change]);
      render();
      let done = false;
      const drop = () => {
        const c = (this.changes.get(id) || []).filter((x) => x !== change);
        if (c.length) this.changes.set(id, c); else this.changes.delete(id);
      };
      // Refused: read the record, then drop the change. Until the answer
      // the page keeps showing the change rather than the older version it
      // holds (the refusal says the server has moved on); events that
      // arrive meanwhile drop it sooner (_prune).
      const undo = () => {
        if (done) return;
        done = true;
        this.refresh(id).finally(() => { drop(); render(); });
      };
      undo.confirm = (rec) => {
        if (done) return;
        done = true;
        drop();
        if (rec && rec.id === id) this.set(rec);
        render();
      };
      return undo;
    };
  }
  /** optimisticStatus is optimistic(id, { status }, render). */
  optimisticStatus(id, status, render) {
    return this.optimistic(id, { status }, render);
  }
}

// ------------------------------------------------------------------ patch

/**
 * patch makes el's children match html, keeping every DOM node that is
 * still wanted (morphdom, keyed): elements with a data-key (or id) are
 * matched by it, so a list reordered or grown by an event moves the existing
 * rows instead of rebuilding them. A button being pressed, a focused input,
 * a half-typed form and the scroll position survive any number of events.
 *
 * Rules: give each row of a list a stable data-key (the record id); an
 * element with data-keep (a form the user types into) is created once and
 * never updated by patch; a focused input/select/textarea keeps its value.
 */
export function patch(el, html) {
  const next = el.cloneNode(false);
  next.innerHTML = html;
  morphdom(el, next, {
    childrenOnly: true,
    getNodeKey: (n) => (n.nodeType === 1 ? (n.getAttribute('data-key') || n.id || undefined) : undefined),
    onBeforeElUpdated: (from, to) => {
      if (from.isEqualNode(to)) return false;
      if (from.hasAttribute('data-keep')) return false;
      if (from === document.activeElement && /^(INPUT|TEXTAREA|SELECT)$/.test(from.tagName)) {
        // Keep what the user is typing (and, for a select, its options);
        // take the other attributes, removed ones included (disabled).
        for (const a of [...from.attributes]) if (a.name !== 'value' && !to.hasAttribute(a.name)) from.removeAttribute(a.name);
        for (const a of to.attributes) if (a.name !== 'value' && from.getAttribute(a.name) !== a.value) from.setAttribute(a.name, a.value);
        return false;
      }
      return true;
    },
  });
}

// ------------------------------------------------------------------ format

export function esc(s) {
  return String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

export function time(iso) {
  if (!iso) return '';
  return new Date(iso).toLocaleTimeString([], { hour: 'numeric', minute: '2-digit' });
}

export function longDate(day) {
  const d = day ? new Date(`${day}T12:00:00`) : new Date();
  return d.toLocaleDateString([], { weekday: 'long', day: 'numeric', month: 'long' });
}

export function minutes(n) {
  if (!n) return 'now';
  if (n < 60) return `~${n} min`;
  return `~${Math.floor(n / 60)} h ${n % 60 ? `${n % 60} min` : ''}`.trim();
}

export function age(dob) {
  if (!dob) return '';
  const b = new Date(dob);
  const n = new Date();
  let a = n.getFullYear() - b.getFullYear();
  if (n.getMonth() < b.getMonth() || (n.getMonth() === b.getMonth() && n.getDate() < b.getDate())) a--;
  return `${a} y`;
}

export function initials(name = '') {
  return name.replace(/^Dr\.?\s+/i, '').split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0]).join('').toUpperCase();
}

export function money(minor, currency = 'USD') {
  try {
    return new Intl.NumberFormat([], { style: 'currency', currency }).format(minor / 100);
  } catch {
    return `${(minor / 100).toFixed(2)} ${currency}`;
  }
}

const LABELS = {
  waiting: 'Waiting', called: 'Called', in_progress: 'With doctor', completed: 'Done', no_show: 'No-show', cancelled: 'Cancelled',
  scheduled: 'Scheduled', checked_in: 'Checked in', in_consultation: 'In consultation',
  open: 'Open', closed: 'Closed', draft: 'Draft', issued: 'Issued', paid: 'Paid', void: 'Void',
  normal: 'Normal', urgent: 'Urgent', emergency: 'Emergency',
};

export function chip(status) {
  return `<span class="chip chip--${esc(status)}">${esc(LABELS[status] || status)}</span>`;
}

/** debounce runs fn once after calls stop for ms. */
export function debounce(fn, ms) {
  let t;
  return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); };
}

/**
 * frame batches renders: many events delivered in one task render once. (Not
 * requestAnimationFrame: it does not run in background tabs, which must stay
 * current too.)
 */
export function frame(fn) {
  let pending = false;
  return () => {
    if (pending) return;
    pending = true;
    setTimeout(() => { pending = false; fn(); }, 0);
  };
}

/** today returns the clinic's day, as the server's boards name it. */
export function today(boards) {
  return boards?.[0]?.day || new Date().toLocaleDateString('en-CA');
}

// ------------------------------------------------------------------ locale and labels (issue 13)
// Numbers, durations, ages and dates in the browser's locale (Intl), and the
// token label of a queue entry. Pages adopt these one at a time.

const NUM = new Intl.NumberFormat();
const MIN = new Intl.NumberFormat(undefined, { style: 'unit', unit: 'minute', unitDisplay: 'short' });
const YEARS = new Intl.NumberFormat(undefined, { style: 'unit', unit: 'year', unitDisplay: 'short' });
const DURATION = globalThis.Intl?.DurationFormat ? new Intl.DurationFormat(undefined, { style: 'short' }) : null;

/** count formats a whole number in the browser's locale: 1,234 / 1.234. */
export function count(n) {
  return NUM.format(Number(n) || 0);
}

/** duration formats minutes in the browser's locale: "20 min", "1 hr, 20 min". */
export function duration(mins) {
  const m = Math.max(0, Math.round(Number(mins) || 0));
  if (m < 60 || !DURATION) return MIN.format(m);
  return DURATION.format({ hours: Math.floor(m / 60), minutes: m % 60 });
}

/** years formats an age from a date of birth (YYYY-MM-DD): "34 yrs"; '' without one. */
export function years(dob) {
  if (!dob) return '';
  const b = new Date(`${dob}T12:00:00`);
  const n = new Date();
  let a = n.getFullYear() - b.getFullYear();
  if (n.getMonth() < b.getMonth() || (n.getMonth() === b.getMonth() && n.getDate() < b.getDate())) a--;
  return Number.isFinite(a) ? YEARS.format(a) : '';
}

/** shortDate formats a day (YYYY-MM-DD) in the browser's locale: "12 Mar 1984". */
export function shortDate(day) {
  if (!day) return '';
  const d = new Date(`${day}T12:00:00`);
  return Number.isNaN(d.getTime()) ? day : d.toLocaleDateString(undefined, { day: 'numeric', month: 'short', year: 'numeric' });
}

/** label is what screens show for a queue entry's token: its token_label ("A3"), else the number. */
export function label(q) {
  return q?.token_label || String(q?.token ?? '');
}
