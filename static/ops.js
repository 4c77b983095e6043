// Operations: server health, this browser's connection, and the server's
// live statistics from GET /api/v1/ops/stats — shown as "not available"
// until the server provides that endpoint.
import { signIn, shell, live, apiGet, esc, toast } from './app.js';

const { claims } = await signIn({ roles: ['admin', 'platform'] });
shell({ title: 'Operations', subtitle: 'Connections & health', claims });
const app = document.getElementById('app');
app.innerHTML = `
  <div class="toolbar"><div><h2>System status</h2><p class="muted small">Refreshes every 10 seconds</p></div></div>
  <section class="kpis" data-health></section>
  <h3 class="section-title" style="margin-top:1.6rem">Live statistics</h3>
  <section data-stats><div class="placeholder">Loading…</div></section>
  <h3 class="section-title" style="margin-top:1.6rem">This browser</h3>
  <section class="card card__body"><dl class="kv" data-conn></dl></section>`;
app.removeAttribute('aria-busy');
const $ = (s) => app.querySelector(s);

const conn = live({ topics: ['doctors'] });
let events = 0;
conn.addEventListener('event', () => { events++; });

async function probe(path) {
  try {
    const res = await fetch(path, { cache: 'no-store' });
    return res.ok;
  } catch { return false; }
}

const LABELS = {
  connections: 'Live connections', stream: 'Stream', poll: 'Polling', long_poll: 'Long-poll', longpoll: 'Long-poll',
  events_per_second: 'Events / s', event_rate: 'Event rate', not_modified_share: '304 share', share_304: '304 share',
  slow_client_disconnects: 'Slow-client disconnects',
};
const label = (k) => LABELS[k] || k.replace(/_/g, ' ').replace(/^\w/, (c) => c.toUpperCase());

// flatten turns nested stats into label/value pairs.
function flatten(obj, prefix = '') {
  const out = [];
  for (const [k, v] of Object.entries(obj || {})) {
    const name = prefix ? `${prefix} · ${label(k)}` : label(k);
    if (v && typeof v === 'object' && !Array.isArray(v)) out.push(...flatten(v, name));
    else out.push([name, typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(2) : String(v)]);
  }
  return out;
}

async function refresh() {
  const [up, ready] = await Promise.all([probe('/healthz'), probe('/readyz')]);
  $('[data-health]').innerHTML = `
    <div class="card kpi ${up ? 'kpi--ok' : 'kpi--bad'}"><small>Server</small><b>${up ? 'Up' : 'Down'}</b></div>
    <div class="card kpi ${ready ? 'kpi--ok' : 'kpi--bad'}"><small>Database</small><b>${ready ? 'Reachable' : 'Unreachable'}</b></div>
    <div class="card kpi"><small>Your connection</small><b>${esc(conn.settled ? conn.state : '…')}</b></div>
    <div class="card kpi"><small>Log position</small><b>${conn.cursor ?? '—'}</b></div>`;
  try {
    const stats = await apiGet('/api/v1/ops/stats');
    const rows = flatten(stats);
    $('[data-stats]').innerHTML = rows.length
      ? `<div class="kpis">${rows.map(([k, v]) => `<div class="card kpi"><small>${esc(k)}</small><b>${esc(v)}</b></div>`).join('')}</div>`
      : '<div class="placeholder">No statistics reported.</div>';
  } catch (err) {
    $('[data-stats]').innerHTML = `<div class="placeholder" data-unavailable>
      <b>Live statistics are not available on this server yet.</b><br>
      <span class="small">${err.status === 404 ? 'GET /api/v1/ops/stats is not provided by this version.' : esc(err.message)}</span></div>`;
  }
  $('[data-conn]').innerHTML = `
    <dt>State</dt><dd>${esc(conn.settled ? conn.state : 'connecting')}</dd>
    <dt>Transport</dt><dd>${esc(conn.transport || '—')}</dd>
    <dt>Tab role</dt><dd>${conn.leader ? 'Leader (holds the connection)' : 'Follower (shares the leader’s)'}</dd>
    <dt>Events received</dt><dd>${events}</dd>
    <dt>Writes waiting to sync</dt><dd>${conn.queued}</dd>`;
}

refresh();
setInterval(refresh, 10000);
conn.addEventListener('state', refresh);
conn.addEventListener('autherror', () => toast('Sign-in expired.', 'error'));
