// Operations: this server instance's live numbers from GET /api/v1/ops/stats
// (admins and platform operators): connections by transport, event and poll
// rates, the share of polls answered 304, slow-client disconnects, the
// change listener, and a chart of the sampled history (the server samples
// every 5 s and keeps ten minutes). Refreshes every 5 s while the tab is
// visible; pauses while it is hidden. Other roles see a clear "for admins"
// message (the server decides: it answers 403).
//
// Webhooks: a panel from GET /api/v1/webhooks/stats (the clinic's
// subscriptions against the log's head; this instance's deliverer) and
// GET /api/v1/webhooks (for each subscription's host: never its path or
// query, which may hold a receiver's token), refreshed with the rest and
// updated in place with patch() (one row per subscription, keyed by id).
import { signIn, shell, live, token, esc, apiGet, patch } from './app.js';
import { claims as decode } from './clinicpulse.js';

const REFRESH_MS = 5000;
const TIMEOUT_MS = 8000;

const { claims } = await signIn({ onChange: () => { stopped = false; kick(); } });
shell({ title: 'Operations', subtitle: 'System health & live connections', claims });
const app = document.getElementById('app');
app.innerHTML = `
  <div class="toolbar ops-head">
    <div><h2>System status</h2><p class="muted small" data-meta>Connecting…</p></div>
    <div class="spacer"></div>
    <div class="ops-pills" data-health></div>
  </div>
  <div class="ops-alert" data-alert role="alert" hidden></div>
  <section data-stats><div class="placeholder">Loading live statistics…</div></section>
  <section class="card ops-wh" data-webhooks aria-labelledby="ops-wh-title" hidden>
    <div class="card__head"><h3 id="ops-wh-title">Webhooks</h3><span class="muted small" data-wh-meta></span>
      <span class="spacer"></span><span class="muted small ops-wh__note">Subscriptions of this clinic · attempts by this instance</span></div>
    <div class="ops-wh__body" data-wh-body></div>
  </section>
  <section class="card ops-chart" data-chart hidden>
    <div class="card__head"><h3>Last minutes</h3><span class="muted small" data-range></span>
      <span class="spacer"></span><span class="muted small ops-chart__note">One sample every 5 s · this instance</span></div>
    <div class="ops-chart__panels" data-panels></div>
  </section>`;
app.removeAttribute('aria-busy');
const $ = (s) => app.querySelector(s);

// The page's own live connection gives the header its badge. It starts at
// the log's head read from a snapshot (one doctor), not "from now": a
// connection without a cursor learns the head from a 410 answer, which the
// browser logs as an error on every load.
let since;
try { since = (await apiGet(`/api/v1/doctors?limit=1${tenantQuery('&')}`)).cursor; } catch { /* the client finds the head itself */ }
const conn = live({ topics: ['doctors'], since });

// ------------------------------------------------------------------ state

let stats = null; // the last answer
let statsAt = 0; // when it arrived (ms)
let dbReady = null; // GET /readyz: true, false, or null (unknown)
let failure = null; // the last refresh's error, if it failed
let stopped = false; // 401/403: no point asking again until the token changes
let timer = 0;
let busy = false;
let hoverT = null; // the chart's crosshair, as a sample time (ms)
let hooks = null; // { stats, hosts, next }: the last webhook answers
let hooksFailure = null; // the last webhook refresh's error, if it failed

// ------------------------------------------------------------------ format

const ICON = {
  stream: '<circle cx="12" cy="12" r="2"/><path d="M16.2 7.8a6 6 0 0 1 0 8.4M7.8 16.2a6 6 0 0 1 0-8.4M19.1 4.9a10 10 0 0 1 0 14.2M4.9 19.1a10 10 0 0 1 0-14.2"/>',
  longpoll: '<path d="M5 22h14M5 2h14M17 22v-4.2a2 2 0 0 0-.6-1.4L12 12l-4.4 4.4a2 2 0 0 0-.6 1.4V22M7 2v4.2a2 2 0 0 0 .6 1.4L12 12l4.4-4.4a2 2 0 0 0 .6-1.4V2"/>',
  poll: '<path d="M21 12a9 9 0 0 1-15.5 6.2L3 16M3 12a9 9 0 0 1 15.5-6.2L21 8M21 3v5h-5M3 21v-5h5"/>',
  events: '<path d="M13 2 4 14h8l-1 8 9-12h-8l1-8z"/>',
  share: '<circle cx="12" cy="12" r="9"/><path d="m8.5 12 2.5 2.5 4.5-5"/>',
  slow: '<path d="M10.3 3.9 1.8 18a2 2 0 0 0 1.7 3h17a2 2 0 0 0 1.7-3L13.7 3.9a2 2 0 0 0-3.4 0zM12 9v4M12 17h.01"/>',
  listener: '<path d="M2 12h4l3-8 6 16 3-8h4"/>',
  instance: '<rect x="3" y="4" width="18" height="7" rx="2"/><rect x="3" y="13" width="18" height="7" rx="2"/><path d="M7 7.5h.01M7 16.5h.01"/>',
  lock: '<rect x="4" y="11" width="16" height="10" rx="2"/><path d="M8 11V7a4 4 0 0 1 8 0v4"/>',
  offline: '<path d="m2 2 20 20M8.5 16.5a5 5 0 0 1 7 0M5 12.9a10 10 0 0 1 5.2-2.8M19 12.9a10 10 0 0 0-2.2-1.6M2 8.8a15 15 0 0 1 4.2-2.6M22 8.8A15 15 0 0 0 10.7 5M12 20h.01"/>',
};
const icon = (name, size = 18) => `<svg width="${size}" height="${size}" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">${ICON[name]}</svg>`;

// Numbers in the browser's locale (Intl): 0.25 / 0,25; 1,234 / 1.234.
const fixed = [0, 1, 2].map((d) => new Intl.NumberFormat(undefined, { minimumFractionDigits: d, maximumFractionDigits: d }));
const upTo2 = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
function rate(n) {
  if (!n) return fixed[0].format(0);
  if (n < 0.1) return fixed[2].format(n);
  if (n < 10) return fixed[1].format(n);
  return fixed[0].format(Math.round(n));
}
const int = (n) => Number(n || 0).toLocaleString();
function pct(share) {
  const v = share * 100;
  if (v > 0 && v < 1) return '<1';
  if (v > 99 && v < 100) return '99';
  return String(Math.round(v));
}
function seconds(s) {
  if (s < 1) return 'under a second';
  if (s < 10) return `${fixed[1].format(s)} s`;
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${fixed[1].format(s / 3600)} h`;
}
function span(ms) {
  const s = Math.round(ms / 1000);
  if (s < 90) return `${s} s`;
  return `${Math.round(s / 60)} min`;
}
const clock = (t) => new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const DATABASES = { sqlite: 'SQLite', postgres: 'PostgreSQL' };

// ------------------------------------------------------------------ fetch

function statsPath() {
  return `/api/v1/ops/stats${tenantQuery('?')}`;
}

// tenantQuery names the tenant for a platform token (the numbers are the
// instance's; a platform token still names a tenant); '' for other roles.
function tenantQuery(sep) {
  const c = decode(token());
  if (c.role !== 'platform') return '';
  const t = new URLSearchParams(location.search).get('tenant_id') || c.tenant_id || '';
  return `${sep}tenant_id=${encodeURIComponent(t)}`;
}

async function getJSON(path) {
  let res;
  try {
    res = await fetch(path, { headers: { Authorization: `Bearer ${token()}` }, cache: 'no-store', signal: AbortSignal.timeout(TIMEOUT_MS) });
  } catch (err) {
    const why = err?.name === 'TimeoutError' ? 'The server did not answer in time.' : 'The server cannot be reached.';
    throw Object.assign(new Error(why), { network: true });
  }
  if (!res.ok) {
    let p = {};
    try { p = await res.json(); } catch { /* not JSON */ }
    throw Object.assign(new Error(p.detail || p.title || `HTTP ${res.status}`), { status: res.status });
  }
  return res.json();
}

async function probeReady() {
  try {
    return (await fetch('/readyz', { cache: 'no-store', signal: AbortSignal.timeout(TIMEOUT_MS) })).ok;
  } catch { return null; }
}

async function refresh() {
  const [s, ready, wh] = await Promise.allSettled([getJSON(statsPath()), probeReady(), fetchHooks()]);
  dbReady = ready.value ?? null;
  if (wh.status === 'fulfilled') {
    hooks = wh.value;
    hooksFailure = null;
  } else {
    hooksFailure = wh.reason;
  }
  if (s.status === 'fulfilled') {
    stats = s.value;
    statsAt = Date.now();
    failure = null;
  } else {
    failure = s.reason;
    if (failure.status === 401 || failure.status === 403) stopped = true;
  }
  draw();
}

// tick refreshes now and schedules the next refresh; hidden tabs and
// refused tokens do not ask again.
async function tick() {
  clearTimeout(timer);
  if (busy) return;
  busy = true;
  try { await refresh(); } finally { busy = false; }
  schedule();
}
function schedule() {
  clearTimeout(timer);
  if (!document.hidden && !stopped) timer = setTimeout(tick, REFRESH_MS);
}
function kick() { if (!document.hidden && !stopped) tick(); }

document.addEventListener('visibilitychange', () => {
  app.toggleAttribute('data-paused', document.hidden);
  if (document.hidden) clearTimeout(timer);
  else kick();
});
// Back from an outage: do not wait for the next tick.
conn.addEventListener('state', () => { if (conn.state === 'live' && failure?.network) kick(); });

// ------------------------------------------------------------------ draw

function draw() {
  drawHealth();
  drawAlert();
  if (failure && (failure.status === 403 || failure.status === 401)) return drawRefused();
  if (!stats) {
    if (failure) {
      $('[data-stats]').innerHTML = message('offline', failure.network ? 'network' : 'server',
        failure.network ? 'Cannot reach ClinicPulse' : 'Operations stats are unavailable',
        `${esc(failure.message)} Retrying every ${REFRESH_MS / 1000} seconds.`);
      $('[data-meta]').textContent = 'Waiting for the server…';
    }
    return;
  }
  drawMeta();
  drawTiles();
  drawWebhooks();
  drawChart();
}

function message(ic, kind, title, body) {
  return `<div class="card ops-message ops-message--${kind}" data-error="${kind}">
    <span class="ops-message__icon">${icon(ic, 28)}</span>
    <div><h2>${esc(title)}</h2><p class="muted">${body}</p></div></div>`;
}

function drawRefused() {
  clearTimeout(timer);
  $('[data-chart]').hidden = true;
  $('[data-webhooks]').hidden = true;
  $('[data-health]').innerHTML = '';
  $('[data-meta]').textContent = 'Not available for this sign-in';
  const role = decode(token()).role || 'unknown';
  $('[data-stats]').innerHTML = failure.status === 403
    ? message('lock', 'forbidden', 'Operations stats are for admins',
      `You are signed in as <b>${esc(role)}</b>. This page shows the server’s live connections, event rates and health;
       open it with an administrator’s or platform operator’s link. <span class="small">(${esc(failure.message)})</span>`)
    : message('lock', 'auth', 'Your sign-in has expired', 'Open a fresh link from your clinic to see the operations view.');
}

function drawHealth() {
  if (stopped) return;
  const up = stats && !failure?.network;
  const pill = (tone, text, key) => `<span class="ops-pill ops-pill--${tone}" data-pill="${key}"><i></i>${esc(text)}</span>`;
  $('[data-health]').innerHTML = (!stats && !failure ? '' : pill(up ? 'ok' : 'bad', up ? 'Server up' : 'Server unreachable', 'server'))
    + (dbReady === null ? '' : pill(dbReady ? 'ok' : 'bad', dbReady ? 'Database reachable' : 'Database unreachable', 'database'));
}

function drawAlert() {
  const el = $('[data-alert]');
  const show = failure && stats && !stopped;
  el.hidden = !show;
  el.removeAttribute('data-error');
  $('[data-stats]').classList.toggle('ops-stale', !!show);
  $('[data-chart]').classList.toggle('ops-stale', !!show);
  $('[data-webhooks]').classList.toggle('ops-stale', !!show);
  if (!show) return;
  el.dataset.error = failure.network ? 'network' : 'server';
  el.innerHTML = `${icon('offline')}<div><b>${failure.network ? 'Cannot reach the server.' : `The server answered: ${esc(failure.message)}`}</b>
    The figures below are from ${esc(clock(statsAt))}. Retrying every ${REFRESH_MS / 1000} seconds.</div>`;
}

function drawMeta() {
  const db = DATABASES[stats.database] || stats.database;
  $('[data-meta]').innerHTML = `Instance <b>${esc(stats.instance)}</b> · ${esc(db)} · updated ${esc(clock(statsAt))} · refreshes every ${REFRESH_MS / 1000} s`;
}

// reading picks the one sample every figure on the page shows — tiles,
// the 304 share, and the chart's latest point — so that they agree: the
// server's latest sample (taken every 5 s; its rates cover the 5 s before
// it). Only while the server has a single sample (it just started) is it
// the fresh reading, whose rates cover the time since that sample. It
// returns the sample, the span its rates cover (ms), and the chart's
// points, ending with the sample shown.
function reading(s) {
  const hist = s.history || [];
  const at = (x) => Date.parse(x.at);
  if (hist.length >= 2) {
    const r = hist[hist.length - 1];
    return { r, spanMs: at(r) - at(hist[hist.length - 2]), pts: hist };
  }
  const prev = hist[0];
  return prev ? { r: s.current, spanMs: at(s.current) - at(prev), pts: [prev, s.current] } : { r: s.current, spanMs: 0, pts: [s.current] };
}

function tile({ key, label, ic, value, num, unit = '', sub = '', tone = '', accent = '', extra = '', text = false }) {
  return `<article class="card ops-tile${tone ? ` ops-tile--${tone}` : ''}${accent ? ` ops-tile--${accent}` : ''}" data-tile="${key}" data-num="${num ?? ''}">
    <div class="ops-tile__head"><span class="ops-tile__icon">${icon(ic)}</span><span>${esc(label)}</span></div>
    <b class="ops-tile__value${text ? ' ops-tile__value--text' : ''}" data-value ${text ? `title="${esc(value)}"` : ''}>${esc(value)}${unit ? `<span class="ops-tile__unit">${esc(unit)}</span>` : ''}</b>
    ${extra}
    <p class="ops-tile__sub">${sub}</p>
  </article>`;
}

function drawTiles() {
  const { r, spanMs, pts } = reading(stats);
  const c = r; // every tile reads the same sample
  const kept = pts.length > 1 ? Date.parse(r.at) - Date.parse(pts[0].at) : 0;
  const hist = pts;
  const polled = r.polls_per_second > 0;
  const share = polled ? r.not_modified_share : null;

  const slowTotal = c.slow_client_disconnects || 0;
  const slowRecent = slowTotal - (hist[0]?.slow_client_disconnects ?? slowTotal);
  const slowSub = slowTotal === 0 ? 'None since the server started'
    : slowRecent > 0 ? `Since start · <b>${int(slowRecent)}</b> in the last ${esc(span(kept))}`
      : `Since start · none in the last ${esc(span(kept))}`;

  let listener;
  if (c.listener_connected === undefined) {
    listener = { value: 'Single instance', tone: 'neutral', num: '', sub: 'SQLite · in-process delivery, no listener needed' };
  } else if (c.listener_connected) {
    listener = { value: 'Connected', tone: 'ok', num: 1,
      sub: c.listener_idle_seconds > 0 ? `Idle ${esc(seconds(c.listener_idle_seconds))} since the last notification` : 'No notification heard yet' };
  } else {
    listener = { value: 'Down', tone: 'bad', num: 0,
      sub: `Reconnecting — missed events are read back from the log${c.listener_idle_seconds > 0 ? ` · idle ${esc(seconds(c.listener_idle_seconds))}` : ''}` };
  }
  const db = DATABASES[stats.database] || stats.database;

  $('[data-stats]').innerHTML = `
    <h3 class="section-title ops-section">Traffic <span class="muted small" data-sample-at="${esc(r.at)}">at ${esc(clock(Date.parse(r.at)))}${spanMs ? `, over the last ${esc(span(spanMs))}` : ''}</span></h3>
    <div class="kpis ops-tiles">
      ${tile({ key: 'streams', label: 'Open streams', ic: 'stream', value: int(c.streams), num: c.streams, accent: 'streams',
    sub: 'Server-Sent Events connections' })}
      ${tile({ key: 'long_polls', label: 'Waiting long-polls', ic: 'longpoll', value: int(c.long_polls), num: c.long_polls,
    sub: 'Requests held until a change' })}
      ${tile({ key: 'polls', label: 'Polls', ic: 'poll', value: rate(r.polls_per_second), unit: '/s', num: r.polls_per_second, accent: 'polls',
    sub: 'List and event reads, conditional included' })}
      ${tile({ key: 'events', label: 'Events', ic: 'events', value: rate(r.events_per_second), unit: '/s', num: r.events_per_second, accent: 'events',
    sub: `${esc(rate(r.dispatched_per_second))}/s dispatched to live clients` })}
    </div>
    <h3 class="section-title ops-section">Health</h3>
    <div class="kpis ops-tiles">
      ${tile({ key: 'share_304', label: 'Answered 304', ic: 'share', value: polled ? pct(share) : '—', unit: polled ? '%' : '', num: share ?? '',
    tone: polled && share >= 0.5 ? 'ok' : '',
    extra: `<div class="ops-meter" aria-hidden="true"><i style="width:${polled ? (share * 100).toFixed(1) : 0}%"></i></div>`,
    sub: polled ? 'of polls: unchanged, answered without a body' : `No polls in the last ${esc(span(spanMs || REFRESH_MS))}` })}
      ${tile({ key: 'slow', label: 'Slow-client disconnects', ic: 'slow', value: int(slowTotal), num: slowTotal,
    tone: slowRecent > 0 ? 'warn' : slowTotal === 0 ? 'ok' : '', sub: slowSub })}
      ${tile({ key: 'listener', label: 'Change listener', ic: 'listener', value: listener.value, num: listener.num, tone: listener.tone, sub: listener.sub })}
      ${tile({ key: 'instance', label: 'Instance', ic: 'instance', value: stats.instance, text: true,
    sub: `${esc(db)} · ${dbReady === false ? '<span class="ops-bad">database unreachable</span>' : dbReady ? 'database reachable' : 'database status unknown'}` })}
    </div>`;
}

// ------------------------------------------------------------------ webhooks

// fetchHooks reads the webhook health and the subscriptions' hosts and
// next attempts (the stats leave URLs out).
async function fetchHooks() {
  const q = tenantQuery('?');
  const [stats, list] = await Promise.all([getJSON(`/api/v1/webhooks/stats${q}`), getJSON(`/api/v1/webhooks${q}`)]);
  const hosts = new Map();
  const next = new Map();
  for (const w of list.items || []) {
    hosts.set(w.id, hostOf(w.url));
    if (w.next_attempt_at) next.set(w.id, w.next_attempt_at);
  }
  return { stats, hosts, next };
}

// hostOf is a URL's host (and port): the path and query stay off the page.
function hostOf(url) {
  try { return new URL(url).host; } catch { return '—'; }
}

const RESULTS = [
  { key: 'success', label: 'Delivered' },
  { key: 'http_error', label: 'Error status' },
  { key: 'timeout', label: 'Timed out' },
  { key: 'network', label: 'Network' },
  { key: 'refused', label: 'Refused (SSRF)' },
  { key: 'skipped', label: 'Skipped' },
];
const STATES = { idle: 'Up to date', delivering: 'Delivering', retrying: 'Retrying', disabled: 'Disabled' };
const events = (n) => `${int(n)} ${n === 1 ? 'event' : 'events'}`;

function whDetail(s, next) {
  if (s.state === 'disabled') return s.disabled_reason ? esc(s.disabled_reason) : 'Turned off by an admin';
  if (s.state === 'retrying') {
    const at = next && Date.parse(next);
    return at ? `Next attempt at <time datetime="${esc(next)}">${esc(clock(at))}</time>` : 'Waiting to retry';
  }
  return s.state === 'delivering' ? 'Catching up with the log' : 'Every event delivered';
}

function drawWebhooks() {
  const box = $('[data-webhooks]');
  if (!hooks) {
    // Nothing to show yet; a failure before the first answer is said below the tiles' own alert.
    box.hidden = !hooksFailure;
    if (hooksFailure) patch($('[data-wh-body]'), `<p class="ops-wh__error" data-wh-error>Webhook health is unavailable: ${esc(hooksFailure.message)}</p>`);
    return;
  }
  box.hidden = false;
  // The page's alert already says when the server cannot be reached; the
  // panel says only what is its own (the webhook answers failed alone).
  const { stats: s, hosts, next } = hooks;
  const inst = s.instance || {};
  const subs = s.subscriptions || [];
  const count = (k) => Number(inst.results?.[k] || 0);
  $('[data-wh-meta]').textContent = `· ${subs.length} ${subs.length === 1 ? 'subscription' : 'subscriptions'} · log at ${int(s.head)}`;
  const figure = (key, label, value, tone = '') => `<div class="ops-wh__figure${tone ? ` ops-wh__figure--${tone}` : ''}" data-key="f-${key}" data-wh-figure="${key}" data-num="${Number(inst[key] || 0)}">
      <dt>${esc(label)}</dt><dd>${value}</dd></div>`;
  const rows = subs.map((w) => `<tr data-key="${esc(w.id)}" data-state="${esc(w.state)}">
      <th scope="row"><span class="ops-wh__host" data-wh-host>${esc(hosts.get(w.id) || '—')}</span><span class="ops-wh__id">${esc(w.id)}</span></th>
      <td><span class="ops-wh__state ops-wh__state--${esc(w.state)}" data-wh-state>${esc(STATES[w.state] || w.state)}</span></td>
      <td class="ops-wh__num" data-wh-lag data-num="${Number(w.lag)}">${esc(events(w.lag))}</td>
      <td class="ops-wh__num" data-wh-failures data-num="${Number(w.failures)}">${esc(int(w.failures))}</td>
      <td class="ops-wh__detail" data-wh-detail>${whDetail(w, next.get(w.id))}</td>
    </tr>`).join('');
  patch($('[data-wh-body]'), `
    ${hooksFailure && !failure ? `<p class="ops-wh__error" data-key="error" data-wh-error>Not refreshed: ${esc(hooksFailure.message)}</p>` : ''}
    <div class="ops-wh__summary" data-key="summary">
      <dl class="ops-wh__figures">
        ${figure('pending', 'Pending', int(inst.pending), inst.pending > 0 ? 'busy' : '')}
        ${figure('retrying', 'Retrying', int(inst.retrying), inst.retrying > 0 ? 'warn' : '')}
        ${figure('max_lag', 'Largest lag', esc(events(Number(inst.max_lag || 0))), inst.max_lag > 0 ? 'busy' : '')}
        ${figure('active', 'Delivering now', int(inst.active))}
      </dl>
      <ul class="ops-wh__results" aria-label="Delivery attempts by result since this instance started">
        ${RESULTS.map((r) => `<li class="ops-wh__result ops-wh__result--${r.key}${count(r.key) ? '' : ' ops-wh__result--zero'}" data-key="r-${r.key}" data-result="${r.key}" data-num="${count(r.key)}">
          <b>${esc(int(count(r.key)))}</b> ${esc(r.label)}</li>`).join('')}
      </ul>
    </div>
    ${subs.length ? `<div class="ops-wh__scroll" data-key="table" role="region" aria-label="Webhook subscriptions" tabindex="0">
      <table class="ops-wh__table">
        <thead><tr><th scope="col">Endpoint</th><th scope="col">State</th><th scope="col" class="ops-wh__num">Lag</th>
          <th scope="col" class="ops-wh__num">Failures</th><th scope="col">Details</th></tr></thead>
        <tbody data-wh-rows>${rows}</tbody>
      </table></div>`
    : `<p class="empty" data-key="empty" data-wh-empty>No webhook subscriptions. An admin creates them with <code>POST /api/v1/webhooks</code> (see docs/webhooks.md).</p>`}`);
}

// ------------------------------------------------------------------ chart

const SERIES = [
  { key: 'events', label: 'Events / s', get: (s) => s.events_per_second, fmt: rate, min: 1 },
  { key: 'polls', label: 'Polls / s', get: (s) => s.polls_per_second, fmt: rate, min: 1 },
  { key: 'streams', label: 'Open streams', get: (s) => s.streams, fmt: int, min: 2, step: true },
];
const W = 600;
const H = 120;

const tickLabel = (v) => upTo2.format(v);

function niceMax(v) {
  const mag = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * mag + 1e-9) return m * mag;
  return 10 * mag;
}

function drawChart() {
  const pts = reading(stats).pts.map((s) => ({ ...s, t: Date.parse(s.at) }));
  const box = $('[data-chart]');
  box.hidden = false;
  const panels = $('[data-panels]');
  if (pts.length < 2) {
    $('[data-range]').textContent = '';
    panels.innerHTML = '<div class="empty">Collecting samples — the chart fills in over the next minutes.</div>';
    return;
  }
  const t1 = pts[pts.length - 1].t;
  const t0 = Math.min(pts[0].t, t1 - 60000); // at least a minute wide
  $('[data-range]').textContent = `· ${span(t1 - pts[0].t)} of ${span(10 * 60000)} kept`;
  const x = (t) => ((t - t0) / (t1 - t0)) * W;
  let hover = null;
  if (hoverT !== null) hover = pts.reduce((a, b) => (Math.abs(b.t - hoverT) < Math.abs(a.t - hoverT) ? b : a));
  panels.innerHTML = SERIES.map((se) => {
    const max = niceMax(Math.max(se.min, ...pts.map(se.get)) * 1.1); // headroom above the peak
    const y = (v) => H - (v / max) * (H - 4);
    let d = '';
    pts.forEach((p, i) => {
      const X = x(p.t).toFixed(1);
      const Y = y(se.get(p)).toFixed(1);
      d += i === 0 ? `M${X},${Y}` : se.step ? `H${X}V${Y}` : `L${X},${Y}`;
    });
    const area = `${d}V${H}H${x(pts[0].t).toFixed(1)}Z`;
    const shown = hover || pts[pts.length - 1];
    const marker = hover ? `<span class="ops-spark__cross" style="left:${(x(hover.t) / W * 100).toFixed(2)}%"></span>
      <span class="ops-spark__dot" style="left:${(x(hover.t) / W * 100).toFixed(2)}%;top:${(y(se.get(hover)) / H * 100).toFixed(2)}%"></span>` : '';
    return `<figure class="ops-spark ops-spark--${se.key}" data-series="${se.key}" data-points="${pts.length}">
      <figcaption><span class="ops-spark__label"><i></i>${esc(se.label)}</span>
        <b>${esc(se.fmt(se.get(shown)))}</b><span class="ops-spark__when">${hover ? esc(clock(hover.t)) : 'latest'}</span></figcaption>
      <div class="ops-spark__plot" data-plot>
        <svg viewBox="0 0 ${W} ${H}" preserveAspectRatio="none" role="img" aria-label="${esc(se.label)} over the last ${esc(span(t1 - pts[0].t))}">
          <line x1="0" y1="${y(max).toFixed(1)}" x2="${W}" y2="${y(max).toFixed(1)}" class="ops-spark__grid"/>
          <line x1="0" y1="${y(max / 2).toFixed(1)}" x2="${W}" y2="${y(max / 2).toFixed(1)}" class="ops-spark__grid"/>
          <line x1="0" y1="${H}" x2="${W}" y2="${H}" class="ops-spark__base"/>
          <path d="${area}" class="ops-spark__area"/>
          <path d="${d}" class="ops-spark__line"/>
        </svg>
        <span class="ops-spark__tick" style="top:${(y(max) / H * 100).toFixed(2)}%">${esc(tickLabel(max))}</span>
        <span class="ops-spark__tick" style="top:${(y(max / 2) / H * 100).toFixed(2)}%">${esc(tickLabel(max / 2))}</span>
        ${marker}
      </div>
      <div class="ops-spark__axis"><span>${esc(span(t1 - t0))} ago</span><span>${esc(span((t1 - t0) / 2))} ago</span><span>${esc(clock(t1))}</span></div>
    </figure>`;
  }).join('');
}

// The crosshair follows the pointer across all three panels.
$('[data-panels]').addEventListener('pointermove', (e) => {
  const plot = e.target.closest?.('[data-plot]');
  if (!plot || !stats?.history?.length) return;
  const pts = reading(stats).pts.map((s) => Date.parse(s.at));
  const t1 = pts[pts.length - 1];
  const t0 = Math.min(pts[0], t1 - 60000);
  const r = plot.getBoundingClientRect();
  const f = Math.min(1, Math.max(0, (e.clientX - r.left) / r.width));
  hoverT = t0 + f * (t1 - t0);
  drawChart();
});
$('[data-panels]').addEventListener('pointerleave', () => { hoverT = null; if (stats) drawChart(); });

app.toggleAttribute('data-paused', document.hidden);
tick();
