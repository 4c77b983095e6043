// Waiting-room display: large token numbers and "now serving" per doctor.
// It reads only the anonymous board (a display token can read nothing else)
// and shows no patient names or other personal data.
//
// Built to run for days without a reload: the connection reconnects forever;
// the board is refetched every 10 minutes and when the day changes; nothing
// accumulates (each render replaces the tiles); an expired token shows a
// notice and a new one can be passed in the fragment or by postMessage.
import { signIn, live, apiGet, esc, logo, prettyTenant, frame, banner } from './app.js';

const { claims } = await signIn({ roles: ['display', 'admin', 'coordinator', 'platform'] });
const app = document.getElementById('app');
app.innerHTML = `
  <header class="display__top">
    <span class="brand">${logo()}<span class="brand__name">ClinicPulse</span></span>
    <span class="display__clinic">${esc(prettyTenant(claims.tenant_id))} · Waiting room</span>
    <span class="display__clock" data-clock></span>
    <span class="display__date" data-date></span>
    <span data-badge></span>
  </header>
  <main class="boards" data-boards></main>
  <div class="ticker" data-ticker></div>
  <div class="display__hint" data-fs>Click for full screen</div>`;
app.removeAttribute('aria-busy');
const $ = (s) => app.querySelector(s);

let boards = new Map();
let order = [];
let day = '';
const flashing = new Set(); // boards whose token just changed
let tickerTimer;

async function load() {
  const b = await apiGet('/api/v1/queue/board');
  boards = new Map(b.boards.map((x) => [x.doctor_id, x]));
  order = b.boards.map((x) => x.doctor_id);
  day = b.boards[0]?.day || day;
  // The board has no cursor of its own yet: the connection starts "from now".
  return Number.isInteger(b.cursor) ? b.cursor : undefined;
}

const render = frame(draw);
const since = await load();
draw();

live({
  since,
  topics: ['queue'],
  onEvent(ev) {
    if (ev.type !== 'queue.board') return;
    const old = boards.get(ev.id);
    // An archived doctor leaves the display (as GET /queue/board omits them).
    if (ev.data.archived) { boards.delete(ev.id); order = order.filter((x) => x !== ev.id); render(); return; }
    if (!old) order.push(ev.id);
    boards.set(ev.id, ev.data);
    if (ev.data.day !== day) { day = ev.data.day; refresh(); }
    // A re-call (POST /queue/{id}/recall) keeps now_serving; last_call moves on.
    const lc = ev.data.last_call;
    const recalled = lc && old?.last_call && lc.token === old.last_call.token && Date.parse(lc.at) > Date.parse(old.last_call.at);
    if (ev.data.now_serving != null && ev.data.now_serving !== old?.now_serving) announce(ev.data);
    else if (recalled) announce(ev.data, lc.token);
    render();
  },
  async onReset() {
    const c = await load();
    render();
    return c;
  },
}).addEventListener('state', (e) => {
  // Back from an outage: reread the board in case events were trimmed.
  if (e.detail !== 'offline') refresh();
});

async function refresh() {
  try { await load(); render(); } catch { /* the next try */ }
}
setInterval(refresh, 10 * 60 * 1000);

function draw() {
  const list = order.map((id) => boards.get(id)).filter(Boolean);
  const el = $('[data-boards]');
  el.style.setProperty('--cols', String(Math.min(Math.max(list.length, 1), 4)));
  el.innerHTML = list.map((b) => `
    <section class="board" data-board="${esc(b.doctor_id)}">
      <div class="board__room">Room ${esc(b.room)}</div>
      <div class="board__doctor">${esc(b.doctor_name)}</div>
      <div class="board__label">Now serving</div>
      ${b.now_serving == null ? '<div class="board__token board__token--none" data-now-serving>Starting soon</div>' : `<div class="board__token" data-now-serving>${b.now_serving}</div>`}
      <div class="board__next"><em>Next</em>${b.waiting.slice(0, 5).map((t) => `<span>${t}</span>`).join('') || '<em>no one waiting</em>'}</div>
      <div class="board__foot"><span><b>${b.waiting_count}</b> waiting</span><span>about <b>${b.estimated_wait_minutes}</b> min</span></div>
    </section>`).join('') || '<p class="muted" style="font-size:2rem">No doctors on duty.</p>';
  for (const id of flashing) el.querySelector(`[data-board="${CSS.escape(id)}"]`)?.classList.add('board--flash');
}

function announce(b, token = b.now_serving) {
  flashing.add(b.doctor_id);
  setTimeout(() => { flashing.delete(b.doctor_id); render(); }, 3600);
  const t = $('[data-ticker]');
  t.innerHTML = `Number <b>${esc(String(token))}</b> → Room ${esc(b.room)}`;
  t.classList.add('ticker--on');
  clearTimeout(tickerTimer);
  tickerTimer = setTimeout(() => t.classList.remove('ticker--on'), 8000);
  chime();
}

// A soft two-tone chime (browsers allow sound after the first click).
let audio;
function chime() {
  try {
    audio ||= new AudioContext();
    if (audio.state !== 'running') return;
    for (const [i, f] of [660, 880].entries()) {
      const o = audio.createOscillator(); const g = audio.createGain();
      o.frequency.value = f; o.connect(g); g.connect(audio.destination);
      const t0 = audio.currentTime + i * 0.35;
      g.gain.setValueAtTime(0.0001, t0); g.gain.exponentialRampToValueAtTime(0.25, t0 + 0.03); g.gain.exponentialRampToValueAtTime(0.0001, t0 + 0.6);
      o.start(t0); o.stop(t0 + 0.65);
    }
  } catch { /* no audio */ }
}

function tick() {
  const now = new Date();
  $('[data-clock]').textContent = now.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  $('[data-date]').textContent = now.toLocaleDateString([], { weekday: 'long', day: 'numeric', month: 'long' });
}
tick();
setInterval(tick, 5000);

document.addEventListener('click', () => {
  audio ||= new AudioContext();
  audio.resume?.();
  document.documentElement.requestFullscreen?.().catch(() => {});
  $('[data-fs]').classList.add('hidden');
});
document.addEventListener('fullscreenchange', () => $('[data-fs]').classList.toggle('hidden', !!document.fullscreenElement));

// Self-heal: an unexpected error reloads the page a minute later (the token
// stays in sessionStorage).
let healing = false;
for (const type of ['error', 'unhandledrejection']) {
  addEventListener(type, () => {
    if (healing) return;
    healing = true;
    banner('Display error — reloading shortly');
    setTimeout(() => location.reload(), 60000);
  });
}
