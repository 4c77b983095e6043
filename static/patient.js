// Patient: my place in the queue and estimated wait, my appointments, and a
// notification when I am called — live, on a phone.
import {
  signIn, shell, live, apiGet, listAll, Records, esc, chip, time, debounce, frame, today, toast, patch, count, duration, label,
} from './app.js';

// The page's words are English: English ordinals (Intl.PluralRules).
const ORD = new Intl.PluralRules('en', { type: 'ordinal' });
const SUFFIX = { one: 'st', two: 'nd', few: 'rd', other: 'th' };
let said = ''; // the last words said to screen readers (say)

const { claims } = await signIn({ roles: ['patient'] });
shell({ title: 'My visit', claims });
const app = document.getElementById('app');

const me = claims.sub;
const doctors = new Records('doctors');
const queue = new Records('queue');
const appts = new Records('appointments');
const rxs = new Records('prescriptions');
let boards = new Map();
let profile = null;
let day = '';

async function load() {
  const b0 = await apiGet('/api/v1/queue/board');
  day = today(b0.boards);
  const [d, q, a, r, p] = await Promise.all([
    listAll('/api/v1/doctors'), listAll(`/api/v1/queue?date=${day}&patient_id=${me}`),
    listAll(`/api/v1/appointments?patient_id=${me}`), listAll(`/api/v1/prescriptions?patient_id=${me}`),
    apiGet(`/api/v1/patients/${me}`).catch(() => null),
  ]);
  doctors.reset(d.items); queue.reset(q.items); appts.reset(a.items); rxs.reset(r.items);
  profile = p;
  const b = await apiGet('/api/v1/queue/board');
  boards = new Map(b.boards.map((x) => [x.doctor_id, x]));
  return Math.min(d.cursor, q.cursor, a.cursor, r.cursor);
}

const since = await load();
app.innerHTML = `
  <div class="greeting"><p class="muted" data-date></p><h2 data-hello></h2></div>
  <section class="card hero" data-hero aria-label="My place in the queue"></section>
  <p class="sr-only" data-announce role="status" aria-live="polite"></p>
  <p class="sr-only" data-alert role="alert"></p>
  <div class="row" style="margin:.8rem 0 1.4rem" data-notify-row>
    <button class="btn btn--sm" data-action="notify">Notify me when I'm called</button>
  </div>
  <h3 class="section-title">My appointments</h3>
  <ul class="list card" data-appts></ul>
  <h3 class="section-title" style="margin-top:1.4rem">My prescriptions</h3>
  <ul class="list card" data-rx></ul>`;
app.removeAttribute('aria-busy');
const $ = (s) => app.querySelector(s);
// Entries already called when the page opened do not notify again.
const wasCalled = new Set(queue.all().filter((q) => q.status === 'called').map((q) => q.id));
const render = frame(draw);
draw();

// Positions and waits change when anyone's entry moves: the board event says
// so; the entry (with its position and estimate) is reread.
const refreshEntries = debounce(async () => {
  try {
    const q = await listAll(`/api/v1/queue?date=${day}&patient_id=${me}`);
    for (const e of q.items) queue.set(e);
    render();
  } catch { /* next event */ }
}, 200);

live({
  since,
  onEvent(ev) {
    if (ev.type === 'queue.board') {
      boards.set(ev.id, ev.data);
      if (current()) refreshEntries();
    } else {
      for (const r of [doctors, queue, appts, rxs]) r.apply(ev);
      if (ev.entity === 'patients' && ev.id === me && ev.data) profile = ev.data;
    }
    render();
  },
  async onReset() {
    const c = await load();
    render();
    return c;
  },
});

// ------------------------------------------------------------------ view

function current() {
  const rank = { called: 0, in_progress: 1, waiting: 2 };
  return queue.all().filter((q) => q.day === day && rank[q.status] !== undefined)
    .sort((a, b) => rank[a.status] - rank[b.status])[0] || null;
}

function ordinal(n) {
  return `${n}${SUFFIX[ORD.select(n)]}`;
}

// say tells screen readers what changed about my place: politely for the
// line moving, at once when I am called.
function say(text, urgent = false) {
  if (text === said) return;
  said = text;
  $(urgent ? '[data-alert]' : '[data-announce]').textContent = text;
}

function draw() {
  const first = (profile?.name || '').split(/\s+/)[0];
  $('[data-hello]').textContent = first ? `Hello, ${first}` : 'Hello';
  $('[data-date]').textContent = new Date().toLocaleDateString(undefined, { weekday: 'long', day: 'numeric', month: 'long' });
  const q = current();
  const hero = $('[data-hero]');
  hero.className = 'card hero';
  if (!q) {
    delete hero.dataset.status;
    patch(hero, `<p class="hero__label">Today</p><p class="hero__line" style="margin-top:.4rem">You are not in a queue right now.</p>
      <p class="muted small" style="margin-top:.4rem">When you check in at the front desk, your number and waiting time appear here.</p>`);
  } else {
    const d = doctors.get(q.doctor_id);
    const b = boards.get(q.doctor_id);
    const room = d?.room || b?.room || '';
    hero.dataset.status = q.status;
    if (q.status === 'called') {
      hero.classList.add('hero--called');
      patch(hero, `<p class="hero__label">It's your turn</p><div class="hero__token" data-token>${esc(label(q))}</div>
        <p class="hero__line">Please go to Room ${esc(room)}</p><p class="muted">${esc(d?.name || '')} is ready for you</p>`);
      say(`It's your turn, number ${label(q)}: please go to Room ${room}.`, true);
      if (!wasCalled.has(q.id)) { wasCalled.add(q.id); notifyCalled(q, room, d); }
    } else if (q.status === 'in_progress') {
      patch(hero, `<p class="hero__label">In consultation</p><div class="hero__token" data-token>${esc(label(q))}</div>
        <p class="hero__line">With ${esc(d?.name || 'your doctor')} · Room ${esc(room)}</p>`);
      say('You are in consultation.');
    } else {
      const pos = (b?.waiting || []).indexOf(q.token) + 1 || q.position;
      const ahead = Math.max(0, pos - 1);
      const serving = b?.last_call?.token_label || b?.now_serving_label || (b?.now_serving != null ? String(b.now_serving) : '');
      const wait = q.estimated_wait_minutes ? `about ${duration(q.estimated_wait_minutes)}` : 'any moment now';
      patch(hero, `<p class="hero__label">Your number</p><div class="hero__token" data-token>${esc(label(q))}</div>
        <p class="hero__line" data-position>You are ${esc(ordinal(pos))} in line</p>
        <p class="muted">${esc(d?.name || '')} · Room ${esc(room)}${serving ? ` · now serving ${esc(serving)}` : ''}</p>
        <div class="hero__wait"><span>Estimated wait</span><b data-wait>${esc(wait)}</b></div>
        <div class="steps" aria-hidden="true">${Array.from({ length: Math.min(pos, 8) }, (_, i) => `<i class="${i === pos - 1 ? 'on' : ''}"></i>`).join('')}</div>
        <p class="muted small" style="margin-top:.6rem">${ahead ? `${esc(count(ahead))} ${ahead === 1 ? 'person' : 'people'} ahead of you` : 'You are next'}</p>`);
      say(`Number ${label(q)}: you are ${ordinal(pos)} in line, ${wait}.`);
    }
  }
  const now = Date.now() - 3600e3;
  const list = appts.all().filter((a) => new Date(a.ends_at).getTime() > now || a.status === 'checked_in')
    .sort((a, b) => a.starts_at.localeCompare(b.starts_at));
  patch($('[data-appts]'), list.map((a) => {
    const d = doctors.get(a.doctor_id);
    const when = new Date(a.starts_at);
    return `<li class="item" data-key="${esc(a.id)}"><span class="time">${esc(time(a.starts_at))}</span><div class="item__main">
      <div class="item__title">${esc(d?.name || 'Doctor')}</div>
      <div class="item__sub">${esc(when.toLocaleDateString(undefined, { weekday: 'short', day: 'numeric', month: 'short' }))}${a.reason ? ` · ${esc(a.reason)}` : ''}${d ? ` · Room ${esc(d.room)}` : ''}</div></div>${chip(a.status)}</li>`;
  }).join('') || '<li class="empty" data-key="empty">No upcoming appointments.</li>');
  const rx = rxs.all().sort((a, b) => b.created_at.localeCompare(a.created_at)).slice(0, 5);
  patch($('[data-rx]'), rx.flatMap((r) => r.items.map((i, n) => `<li class="item" data-key="${esc(r.id)}-${n}"><div class="item__main">
      <div class="item__title">${esc(i.drug)} ${esc(i.dose)}</div>
      <div class="item__sub">${esc([i.route, i.frequency, i.duration].filter(Boolean).join(' · '))}</div></div></li>`)).join('')
    || '<li class="empty" data-key="empty">No prescriptions.</li>');
  const row = $('[data-notify-row]');
  row.classList.toggle('hidden', !('Notification' in globalThis) || Notification.permission !== 'default');
}

function notifyCalled(q, room, d) {
  toast(`It's your turn (${label(q)}): please go to Room ${room}.`, 'ok', 15000);
  navigator.vibrate?.([300, 150, 300]);
  if ('Notification' in globalThis && Notification.permission === 'granted') {
    try { new Notification('ClinicPulse — it’s your turn', { body: `Number ${label(q)}: please go to Room ${room}${d ? ` (${d.name})` : ''}.`, tag: q.id }); } catch { /* mobile needs a service worker */ }
  }
}

app.addEventListener('click', async (e) => {
  if (e.target.closest('[data-action="notify"]')) {
    await Notification.requestPermission();
    render();
  }
});
