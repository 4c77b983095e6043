// Waiting-room display: per doctor, the token being served (or, before the
// first call, the next one) and who is next, as token labels (A3, B1: the
// doctor's letter of the day and the number, unique on the screen). It reads
// only the anonymous board (a display token can read nothing else) and shows
// no patient names or other personal data.
//
// Layout: the cards share the screen in a grid chosen for their number (1–8
// and more) and size their text with container query units, so a 1080p and
// a 4K screen show the same picture and no text reaches a card's edge.
//
// Built to run for days without a reload: the connection reconnects forever;
// the board is refetched every 10 minutes and when the day changes; events
// patch only the cards that changed (keyed, see patch in app.js); an expired
// token shows a notice and a new one can be passed in the fragment or by
// postMessage.
import { signIn, live, apiGet, esc, logo, prettyTenant, frame, banner, patch } from './app.js';

const { claims } = await signIn({ roles: ['display', 'admin', 'coordinator', 'platform'] });
const app = document.getElementById('app');
app.innerHTML = `
  <header class="display__top">
    <span class="brand">${logo()}<span class="brand__name">ClinicPulse</span></span>
    <span class="display__clinic">${esc(prettyTenant(claims.tenant_id))} · Waiting room</span>
    <span class="display__when"><time class="display__clock" data-clock></time><span class="display__date" data-date></span></span>
    <button type="button" class="display__hint" data-fs>Full screen</button>
    <span data-badge></span>
  </header>
  <main class="boards" data-boards aria-label="Queues by room"></main>
  <footer class="callbar" data-callbar>
    <div class="callbar__call" data-call role="status" aria-live="assertive" aria-atomic="true"></div>
    <div class="callbar__hint" data-hint></div>
  </footer>`;
app.removeAttribute('aria-busy');
const $ = (s) => app.querySelector(s);

const IDLE_ICON = '<svg class="board__idle-icon" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="1.6" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true"><circle cx="12" cy="12" r="9"/><path d="m8.5 12.5 2.5 2.5 4.5-5"/></svg>';
const num = new Intl.NumberFormat();
const mins = new Intl.NumberFormat(undefined, { style: 'unit', unit: 'minute', unitDisplay: 'long' });

let boards = new Map();
let order = [];
let day = '';
const flashing = new Set(); // boards whose token was just called
let lastCall = null; // {label, room, doctor, at}
let callTimer;

async function load() {
  const b = await apiGet('/api/v1/queue/board');
  boards = new Map(b.boards.map((x) => [x.doctor_id, x]));
  order = b.boards.map((x) => x.doctor_id);
  day = b.boards[0]?.day || day;
  // The latest call on the screen, so the call bar is right after a reload.
  for (const x of b.boards) {
    const lc = x.last_call;
    if (lc && (!lastCall || Date.parse(lc.at) > lastCall.at)) lastCall = { label: labelOf(x, lc.token, lc.token_label), room: x.room, at: Date.parse(lc.at), fresh: false };
  }
  return Number.isInteger(b.cursor) ? b.cursor : undefined;
}

// labelOf is a token's label on a board; boards from before labels existed
// carry none, and then the number is the label.
function labelOf(b, token, label) {
  return label || `${b.token_prefix || ''}${token}`;
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
    // A call or a re-call (POST /queue/{id}/recall) moves last_call on.
    const lc = ev.data.last_call;
    const prev = old?.last_call;
    if (lc && (!prev || lc.token !== prev.token || Date.parse(lc.at) > Date.parse(prev.at))) {
      announce(ev.data, labelOf(ev.data, lc.token, lc.token_label));
    }
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

// grid returns [columns, rows] for n cards on a landscape screen: one row up
// to three, then two rows (2×2, 3×2, 4×2), then three.
function grid(n) {
  if (n <= 3) return [Math.max(n, 1), 1];
  if (n <= 8) return [Math.ceil(n / 2), 2];
  return [Math.ceil(n / 3), 3];
}

// tokenHTML shows a label with the prefix set apart (the letter in the
// room's colour, the number in white); data-now-serving holds the number.
function tokenHTML(b, token, label, attr = '') {
  const pfx = b.token_prefix && label.startsWith(b.token_prefix) ? b.token_prefix : '';
  return `<span class="board__pfx">${esc(pfx)}</span><span ${attr}>${esc(label.slice(pfx.length) || String(token))}</span>`;
}

function card(b) {
  const waiting = b.waiting || [];
  const labels = b.waiting_labels || waiting.map((t) => labelOf(b, t));
  // The big token is the one patients must act on: the latest call (a
  // token called while the previous patient is still inside, or called
  // again), else the patient inside.
  const call = b.last_call ? [b.last_call.token, labelOf(b, b.last_call.token, b.last_call.token_label)]
    : b.now_serving != null ? [b.now_serving, labelOf(b, b.now_serving, b.now_serving_label)] : null;
  const serving = !!call;
  let main;
  if (serving) {
    const [token, label] = call;
    main = `<div class="board__label">Now serving</div>
      <div class="board__token" data-label="${esc(label)}" aria-label="${esc(label)}" style="--chars:${label.length}">${tokenHTML(b, token, label, 'data-now-serving')}</div>`;
  } else if (waiting.length) {
    // Before the first call: who goes first, never an empty "soon".
    main = `<div class="board__label">Next</div>
      <div class="board__token board__token--next" data-next-label="${esc(labels[0])}" aria-label="${esc(labels[0])}" style="--chars:${labels[0].length}">${tokenHTML(b, waiting[0], labels[0])}</div>`;
  } else {
    main = `<div class="board__idle" data-idle>${IDLE_ICON}<b>No one waiting</b><span>Check in at the front desk</span></div>`;
  }
  const upcoming = (serving ? labels : labels.slice(1)).slice(0, 8);
  const next = upcoming.length
    ? `<span class="board__next-title">${serving ? 'Next' : 'Then'}</span>${upcoming.map((l) => `<span class="board__chip">${esc(l)}</span>`).join('')}`
    : '';
  const n = b.waiting_count ?? waiting.length;
  const foot = n
    ? `<span><b>${esc(num.format(n))}</b> waiting</span><span>about <b>${esc(mins.format(b.estimated_wait_minutes || 0))}</b></span>`
    : '<span>Queue is clear</span>';
  return `<section class="board${flashing.has(b.doctor_id) ? ' board--flash' : ''}" data-key="${esc(b.doctor_id)}" data-board="${esc(b.doctor_id)}"
      aria-label="Room ${esc(b.room)}, ${esc(b.doctor_name)}">
      <header class="board__head">
        ${b.token_prefix ? `<span class="board__letter" aria-hidden="true">${esc(b.token_prefix)}</span>` : ''}
        <div class="board__who"><div class="board__room">Room ${esc(b.room)}</div><div class="board__doctor">${esc(b.doctor_name)}</div></div>
      </header>
      <div class="board__main">${main}</div>
      <div class="board__next" data-next>${next}</div>
      <div class="board__foot">${foot}</div>
    </section>`;
}

function draw() {
  const list = order.map((id) => boards.get(id)).filter(Boolean);
  const el = $('[data-boards]');
  const [cols, rows] = grid(list.length);
  el.style.setProperty('--cols', String(cols));
  el.style.setProperty('--rows', String(rows));
  el.dataset.count = String(list.length);
  patch(el, list.map(card).join('') || '<p class="boards__empty" data-key="empty">No doctors on duty today.</p>');
  drawCall();
}

function drawCall() {
  const call = $('[data-call]');
  const html = lastCall
    ? `<span class="callbar__what">${lastCall.fresh ? 'Now calling' : 'Last call'}</span>
       <b class="callbar__token">${esc(lastCall.label)}</b><span class="callbar__arrow" aria-hidden="true">→</span>
       <span class="callbar__room">Room ${esc(lastCall.room)}</span>`
    : '<span class="callbar__what">Your number will appear here when you are called</span>';
  patch(call, html);
  $('[data-callbar]').classList.toggle('callbar--on', !!lastCall?.fresh);
  $('[data-hint]').textContent = 'Your number starts with your doctor’s letter';
}

function announce(b, label) {
  flashing.add(b.doctor_id);
  setTimeout(() => { flashing.delete(b.doctor_id); render(); }, 3600);
  lastCall = { label, room: b.room, at: Date.now(), fresh: true };
  clearTimeout(callTimer);
  callTimer = setTimeout(() => { lastCall.fresh = false; render(); }, 8000);
  chime();
}

// A soft two-tone chime (browsers allow sound after the first click).
let audio;
function chime() {
  try {
    if (!audio || audio.state !== 'running') return;
    for (const [i, f] of [660, 880].entries()) {
      const o = audio.createOscillator(); const g = audio.createGain();
      o.frequency.value = f; o.connect(g); g.connect(audio.destination);
      const t0 = audio.currentTime + i * 0.35;
      g.gain.setValueAtTime(0.0001, t0); g.gain.exponentialRampToValueAtTime(0.25, t0 + 0.03); g.gain.exponentialRampToValueAtTime(0.0001, t0 + 0.6);
      o.start(t0); o.stop(t0 + 0.65);
    }
  } catch { /* no audio */ }
}

const clockFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dateFmt = new Intl.DateTimeFormat(undefined, { weekday: 'long', day: 'numeric', month: 'long' });
function tick() {
  const now = new Date();
  const c = $('[data-clock]');
  c.textContent = clockFmt.format(now);
  c.dateTime = now.toISOString();
  $('[data-date]').textContent = dateFmt.format(now);
}
tick();
setInterval(tick, 5000);

// Full screen and sound need a user gesture: a click anywhere, or the
// button from the keyboard.
function wake() {
  audio ||= new AudioContext();
  audio.resume?.();
  document.documentElement.requestFullscreen?.().catch(() => {});
}
document.addEventListener('click', wake);
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
