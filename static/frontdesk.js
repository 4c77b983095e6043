// Front desk: today's queue per doctor, the appointments of a day, booking,
// rescheduling and cancelling, walk-ins and patient search — live.
//
// Rendering. The page's skeleton (frontdesk.html) is built once; each live
// region (stats, doctor cards, appointments, search results) is updated with
// patch() (keyed morphdom): an event changes only the nodes it concerns, so a
// button held down, the focus, a half-typed form and the scroll position
// survive any number of events. Dialogs are outside the live regions.
//
// Writes go through perform(): an optimistic change is shown at once and, on
// any refusal, the page shows the newest version the server has shown (and
// reads the record again), never the state from before the click.
//
// Dates, times and numbers are formatted with Intl in the browser's locale.
import {
  signIn, shell, live, perform, apiGet, listAll, Records, esc, chip, initials, frame, today, toast, patch, debounce, token, label,
} from './app.js';

const { claims } = await signIn({ roles: ['admin', 'coordinator', 'doctor', 'platform'] });
shell({ title: 'Front desk', subtitle: 'Queue, arrivals & bookings', claims });
const app = document.getElementById('app');
const $ = (sel, root = app) => root.querySelector(sel);

// ------------------------------------------------------------------ formats (Intl, browser locale)

const NUM = new Intl.NumberFormat();
const TIME = new Intl.DateTimeFormat([], { hour: 'numeric', minute: '2-digit' });
const LONG_DAY = new Intl.DateTimeFormat([], { weekday: 'long', day: 'numeric', month: 'long' });
const SHORT_DAY = new Intl.DateTimeFormat([], { weekday: 'short', day: 'numeric', month: 'short' });
const DOB = new Intl.DateTimeFormat([], { dateStyle: 'medium', timeZone: 'UTC' });
const MIN = new Intl.NumberFormat([], { style: 'unit', unit: 'minute', unitDisplay: 'short' });
const HOUR = new Intl.NumberFormat([], { style: 'unit', unit: 'hour', unitDisplay: 'short' });
const LIST = new Intl.ListFormat([], { type: 'conjunction' });

const n = (x) => NUM.format(x);
const hm = (iso) => (iso ? TIME.format(new Date(iso)) : '');
const dayDate = (d) => new Date(`${d}T12:00:00`);
function wait(mins) {
  if (!mins) return 'now';
  if (mins < 60) return `~${MIN.format(mins)}`;
  const h = Math.floor(mins / 60);
  return `~${HOUR.format(h)}${mins % 60 ? ` ${MIN.format(mins % 60)}` : ''}`;
}
/** localDay is the browser's calendar day of a time: YYYY-MM-DD. */
const localDay = (t) => {
  const d = new Date(t);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
};
const hhmm = (d) => `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;

// ------------------------------------------------------------------ state

const doctors = new Records('doctors');
const patients = new Records('patients');
const queue = new Records('queue');
const appts = new Records('appointments');
let boards = new Map(); // doctor id → board
let boardOrder = [];
let day = ''; // the clinic's day, as the boards name it
let apptDay = ''; // the day the appointment list shows
const render = frame(draw);
let conn = null; // the live connection, opened once the page is drawn (end of this module)
const pending = new Map(); // Idempotency-Key → placeholder of a queued walk-in

const R = {
  day: $('[data-day]'), stats: $('[data-stats]'), grid: $('[data-grid]'), appts: $('[data-appts]'),
  apptCount: $('[data-appt-count]'), apptDay: $('[data-appt-day]'), announce: $('[data-announce]'),
};

async function load() {
  const b0 = await apiGet('/api/v1/queue/board');
  day = today(b0.boards);
  if (!apptDay) apptDay = day;
  const [d, p, q, a] = await Promise.all([
    listAll('/api/v1/doctors'), listAll('/api/v1/patients'),
    listAll(`/api/v1/queue?date=${day}`), listAll(`/api/v1/appointments?date=${apptDay}`),
  ]);
  // Boards after the lists: they are at least as new as the cursor.
  const b = await apiGet('/api/v1/queue/board');
  doctors.reset(d.items); patients.reset(p.items); queue.reset(q.items); appts.reset(a.items);
  setBoards(b.boards);
  return Math.min(d.cursor, p.cursor, q.cursor, a.cursor);
}

function setBoards(list) {
  boards = new Map(list.map((x) => [x.doctor_id, x]));
  boardOrder = list.map((x) => x.doctor_id);
}

// ------------------------------------------------------------------ announcements (aria-live)

const heard = [];
const SAID = {
  called: 'called', in_progress: 'is with the doctor', completed: 'is done', no_show: 'marked no-show', cancelled: 'cancelled', waiting: 'is waiting again',
};

// noteQueueChange queues a sentence for screen readers about a queue event
// (before it is applied, to compare with what the page knew).
function noteQueueChange(ev) {
  if (!ev.data || ev.data.day !== day) return;
  const old = queue.server(ev.id);
  const q = ev.data;
  const who = `token ${label(q)}, ${patients.get(q.patient_id)?.name || 'a patient'}`;
  const doc = doctors.get(q.doctor_id)?.name || 'the doctor';
  if (!old) heard.push(`${who}, joined ${doc}'s queue`);
  else if (old.status !== q.status) heard.push(`${who}, ${SAID[q.status] || q.status}${q.status === 'called' ? ` to room ${doctors.get(q.doctor_id)?.room || ''}` : ''}`.trim());
  else if ((q.recalls || 0) > (old.recalls || 0)) heard.push(`${who}, called again`);
}

function announce() {
  if (!heard.length) return;
  const said = heard.splice(0);
  const text = said.length > 3 ? `${said.slice(-3).join('. ')}. And ${n(said.length - 3)} more queue changes.` : `${said.join('. ')}.`;
  R.announce.textContent = text.charAt(0).toUpperCase() + text.slice(1);
}

/** say announces text to screen readers (the page's polite live region). */
function say(text) { heard.push(text); announce(); }

// ------------------------------------------------------------------ view

function entriesOf(doctorId) {
  const b = boards.get(doctorId);
  const order = new Map((b?.waiting || []).map((t, i) => [t, i]));
  const rank = { in_progress: 0, called: 1, waiting: 2 };
  return queue.all()
    .filter((q) => q.doctor_id === doctorId && q.day === day)
    .sort((x, y) => (rank[x.status] ?? 9) - (rank[y.status] ?? 9)
      || (order.get(x.token) ?? 1e9) - (order.get(y.token) ?? 1e9) || x.token - y.token);
}

function apptsOf(d) {
  return appts.all().filter((a) => localDay(a.starts_at) === d).sort((x, y) => x.starts_at.localeCompare(y.starts_at));
}

function draw() {
  const active = queue.all().filter((q) => q.day === day);
  const count = (f) => active.filter(f).length;
  const toArrive = apptsOf(day).filter((a) => a.status === 'scheduled').length;
  R.day.textContent = day ? LONG_DAY.format(dayDate(day)) : '';
  patch(R.stats, [
    ['waiting', count((q) => q.status === 'waiting'), 'Waiting'],
    ['with-doctor', count((q) => q.status === 'in_progress' || q.status === 'called'), 'With doctor'],
    ['seen', count((q) => q.status === 'completed'), 'Seen today'],
    ['to-arrive', toArrive, 'Still to arrive'],
  ].map(([k, v, label]) => `<div class="stat" data-key="stat-${k}"><b data-stat="${k}">${n(v)}</b><span>${label}</span></div>`).join(''));
  patch(R.grid, boardOrder.map(drawDoctor).join('') || '<p class="empty" data-key="none">No doctors on duty.</p>');
  const list = apptsOf(apptDay);
  if (R.apptDay.value !== apptDay && document.activeElement !== R.apptDay) R.apptDay.value = apptDay;
  R.apptCount.textContent = n(list.length);
  patch(R.appts, list.map(drawAppt).join('')
    || `<li class="empty" data-key="none">No appointments ${apptDay === day ? 'today' : `on ${esc(SHORT_DAY.format(dayDate(apptDay)))}`}.</li>`);
  announce();
}

function drawDoctor(id) {
  const b = boards.get(id);
  const d = doctors.get(id) || { name: b?.doctor_name || 'Doctor', room: b?.room, specialty: '' };
  const list = entriesOf(id);
  const open = list.filter((q) => ['in_progress', 'called', 'waiting'].includes(q.status));
  const done = list.length - open.length;
  const placeholders = [...pending.entries()].filter(([, p]) => p.doctor_id === id);
  const next = list.find((q) => q.status === 'waiting');
  const foot = b ? `${n(b.waiting_count)} waiting · ${wait(b.estimated_wait_minutes)}${done ? ` · ${n(done)} done` : ''}` : '';
  return `
    <article class="card" data-key="doc-${esc(id)}" data-doctor-id="${esc(id)}" aria-labelledby="doc-${esc(id)}-name">
      <div class="card__head">
        <span class="avatar" aria-hidden="true">${esc(initials(d.name))}</span>
        <div class="fd-doc"><h3 class="doc-name" id="doc-${esc(id)}-name">${esc(d.name)}</h3>
          <div class="doc-meta">${esc(d.specialty || '')}${d.specialty ? ' · ' : ''}Room ${esc(d.room || '—')}</div></div>
        <div class="serving"><small>Serving</small><b data-now-serving>${b?.now_serving ?? '—'}</b></div>
      </div>
      <ul class="list" aria-label="Queue of ${esc(d.name)}">
        ${open.map(drawEntry).join('')}
        ${placeholders.map(([key, p]) => `<li class="item item--pending" data-key="pending-${esc(key)}" data-pending="${esc(p.patient_id)}">
            <span class="token">…</span><div class="item__main"><div class="item__title">${esc(p.name)}</div>
            <div class="item__sub">Waiting to sync — added offline</div></div></li>`).join('')}
        ${open.length || placeholders.length ? '' : '<li class="empty" data-key="empty">Nobody waiting.</li>'}
      </ul>
      <div class="card__foot">
        <span class="muted small fd-foot">${foot}</span>
        <button class="btn btn--primary btn--sm" type="button" data-action="call-next" data-doctor="${esc(id)}" ${next ? '' : 'disabled'}
          aria-label="Call next patient for ${esc(d.name)}">Call next</button>
      </div>
    </article>`;
}

function drawEntry(q) {
  const p = patients.get(q.patient_id);
  const name = p?.name || 'Patient';
  const pos = q.status === 'waiting' ? positionOf(q) : 0;
  const sub = q.status === 'waiting' ? `#${n(pos)} in line · ${wait(waitOf(q, pos))}`
    : q.status === 'called' ? `Called${q.called_at ? ` ${hm(q.called_at)}` : ''}${q.recalls ? ` · ${n(q.recalls + 1)}×` : ''}` : 'In consultation';
  const what = `token ${esc(label(q))}, ${esc(name)}`;
  const actions = q.status === 'waiting'
    ? `<button class="btn btn--sm" type="button" data-action="call" data-id="${esc(q.id)}" aria-label="Call ${what}">Call</button>
       <button class="btn btn--sm btn--ghost" type="button" data-action="cancel" data-id="${esc(q.id)}" aria-label="Remove ${what} from the queue" title="Remove from the queue">✕</button>`
    : q.status === 'called'
      ? `<button class="btn btn--sm" type="button" data-action="recall" data-id="${esc(q.id)}" aria-label="Call ${what} again">Again</button>
         <button class="btn btn--sm btn--danger" type="button" data-action="no-show" data-id="${esc(q.id)}" aria-label="Mark ${what} as no-show">No-show</button>`
      : '';
  return `<li class="item ${q.status !== 'waiting' ? 'item--active' : ''}" data-key="${esc(q.id)}" data-entry-id="${esc(q.id)}" data-token="${q.token}" data-status="${q.status}" data-patient="${esc(q.patient_id)}">
    <span class="token token--${q.status}" aria-label="Token ${esc(label(q))}">${esc(label(q))}</span>
    <div class="item__main"><div class="item__title">${esc(name)}</div>
      <div class="item__sub">${q.priority !== 'normal' ? `${chip(q.priority)} ` : ''}${esc(sub)}</div></div>
    <div class="item__actions">${actions}</div></li>`;
}

function positionOf(q) {
  const w = boards.get(q.doctor_id)?.waiting || [];
  const i = w.indexOf(q.token);
  return i >= 0 ? i + 1 : q.position || 0;
}

function waitOf(q, pos) {
  const b = boards.get(q.doctor_id);
  if (!b) return q.estimated_wait_minutes;
  const busy = b.now_serving != null ? 1 : 0;
  const per = b.waiting_count + busy ? b.estimated_wait_minutes / (b.waiting_count + busy) : 10;
  return Math.round((pos - 1 + busy) * per);
}

const ICON_MOVE = '<svg aria-hidden="true" width="16" height="16" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round"><rect x="3" y="5" width="18" height="16" rx="2"/><path d="M16 3v4M8 3v4M3 10h18M12 13v5M9.5 15.5 12 18l2.5-2.5"/></svg>';

function drawAppt(a) {
  const p = patients.get(a.patient_id);
  const d = doctors.get(a.doctor_id);
  const name = p?.name || 'Patient';
  const what = `${esc(name)}'s ${esc(hm(a.starts_at))} appointment`;
  const done = ['completed', 'cancelled', 'no_show'].includes(a.status);
  const buttons = [];
  if (a.status === 'scheduled') {
    if (localDay(a.starts_at) === day) buttons.push(`<button class="btn btn--sm" type="button" data-action="check-in" data-id="${esc(a.id)}" aria-label="Check in ${what}">Check in</button>`);
    buttons.push(`<button class="btn btn--sm btn--ghost btn--icon" type="button" data-action="reschedule" data-id="${esc(a.id)}" aria-label="Reschedule ${what}" title="Reschedule">${ICON_MOVE}</button>`);
  }
  if (a.status === 'scheduled' || a.status === 'checked_in') {
    buttons.push(`<button class="btn btn--sm btn--ghost btn--icon" type="button" data-action="cancel-appt" data-id="${esc(a.id)}" aria-label="Cancel ${what}" title="Cancel appointment">✕</button>`);
  }
  return `<li class="item ${done ? 'item--done' : ''}" data-key="${esc(a.id)}" data-appt-id="${esc(a.id)}" data-status="${a.status}">
    <span class="time"><time datetime="${esc(a.starts_at)}">${esc(hm(a.starts_at))}</time><small>${esc(hm(a.ends_at))}</small></span>
    <div class="item__main"><div class="item__title">${esc(name)}</div>
      <div class="item__sub">${a.status !== 'scheduled' ? `${chip(a.status)} ` : ''}${esc(d?.name || '')}${a.reason ? ` · ${esc(a.reason)}` : ''}</div></div>
    ${buttons.length ? `<div class="item__actions">${buttons.join('')}</div>` : ''}
  </li>`;
}

// ------------------------------------------------------------------ queue & check-in actions

async function setQueueStatus(id, status, action) {
  const q = queue.get(id);
  if (!q) return;
  const p = patients.get(q.patient_id);
  await perform(conn, 'PATCH', `/api/v1/queue/${id}`, { status }, {
    ifMatch: queue.server(id).version, label: `${action} #${label(q)} ${p?.name || ''}`.trim(), optimistic: queue.optimisticStatus(id, status, render),
  });
}

async function recall(id) {
  const q = queue.get(id);
  if (!q) return;
  const r = await perform(conn, 'POST', `/api/v1/queue/${id}/recall`, undefined, {
    label: `Call again #${label(q)}`, refresh: [queue, id, render],
  });
  if (r.ok && r.data) { queue.set(r.data); render(); }
}

async function checkIn(id) {
  const a = appts.get(id);
  if (!a) return;
  const p = patients.get(a.patient_id);
  const r = await perform(conn, 'PATCH', `/api/v1/appointments/${id}`, { status: 'checked_in' }, {
    ifMatch: appts.server(id).version, label: `Check in ${p?.name || ''}`.trim(), optimistic: appts.optimisticStatus(id, 'checked_in', render),
  });
  if (r.ok && !r.queued) say(`${p?.name || 'The patient'} checked in`);
}

app.addEventListener('click', async (e) => {
  const btn = e.target.closest('[data-action]');
  if (!btn || btn.disabled) return;
  const id = btn.dataset.id;
  switch (btn.dataset.action) {
    case 'walkin': openWalkin(); break;
    case 'book': openBooking(); break;
    case 'call': await setQueueStatus(id, 'called', 'Call'); break;
    case 'cancel': await setQueueStatus(id, 'cancelled', 'Remove'); break;
    case 'no-show': await setQueueStatus(id, 'no_show', 'No-show'); break;
    case 'recall': await recall(id); break;
    case 'call-next': {
      const next = entriesOf(btn.dataset.doctor).find((q) => q.status === 'waiting');
      if (next) await setQueueStatus(next.id, 'called', 'Call');
      break;
    }
    case 'check-in': await checkIn(id); break;
    case 'reschedule': openBooking({ appt: appts.get(id) }); break;
    case 'cancel-appt': await cancelAppointment(id); break;
    case 'search-book': closeSearch(); openBooking({ patient: btn.dataset.patient }); break;
    case 'search-walkin': closeSearch(); openWalkin({ patient: btn.dataset.patient }); break;
  }
});

R.apptDay.addEventListener('change', async () => {
  const d = R.apptDay.value;
  if (!/^\d{4}-\d{2}-\d{2}$/.test(d) || d === apptDay) return;
  apptDay = d;
  render();
  try {
    const { items } = await listAll(`/api/v1/appointments?date=${d}`);
    for (const a of items) appts.set(a);
  } catch (err) {
    toast(`Could not load the appointments of ${SHORT_DAY.format(dayDate(d))}: ${err.message}`, 'error');
  }
  render();
});

// ------------------------------------------------------------------ patient search

/**
 * PatientSearch searches patients as the user types: debounced (250 ms),
 * server-side (GET /api/v1/patients?q=: name prefixes, MRN or phone digits),
 * an answer that is not for the latest query discarded (and its request
 * aborted). Results are patched into list, keyed by patient id; row(p)
 * renders one result's actions.
 */
class PatientSearch {
  constructor({ input, list, status, row, onResults }) {
    Object.assign(this, { input, list, status, row, onResults });
    this.seq = 0;
    this.ctl = null;
    this.items = [];
    this.last = '';
    const go = debounce(() => this.run(), 250);
    input.addEventListener('input', () => { this.seq++; go(); });
  }

  clear() {
    this.seq++;
    this.ctl?.abort();
    this.items = [];
    this.last = '';
    this.status.textContent = '';
    patch(this.list, '');
    this.onResults?.(false);
  }

  async run() {
    const q = this.input.value.trim();
    if (q === this.last) return;
    this.last = q;
    const seq = ++this.seq;
    this.ctl?.abort();
    if (q.length < 2 || !/[\p{L}\p{N}]/u.test(q)) {
      this.items = [];
      this.status.textContent = q ? 'Type at least two letters or digits of a name, an MRN or a phone number.' : '';
      patch(this.list, '');
      this.onResults?.(!!q);
      return;
    }
    const ctl = new AbortController();
    this.ctl = ctl;
    this.status.textContent = 'Searching…';
    let items;
    let offline = false;
    try {
      const res = await fetch(`/api/v1/patients?q=${encodeURIComponent(q)}&limit=20`, {
        headers: { Authorization: `Bearer ${token()}` }, cache: 'no-store', signal: ctl.signal,
      });
      const body = await res.json().catch(() => ({}));
      if (seq !== this.seq) return; // a newer query was typed: this answer is stale
      if (!res.ok) {
        this.items = [];
        this.status.textContent = body.errors?.[0]?.message ? `Search: ${body.errors[0].message}.` : `Search failed (${res.status}).`;
        patch(this.list, '');
        this.onResults?.(true);
        return;
      }
      items = body.items || [];
    } catch (err) {
      if (seq !== this.seq || err.name === 'AbortError') return;
      // No connection: the desk still finds the patients this page holds,
      // so a walk-in can be queued offline (the outbox sends it later).
      items = localMatches(q);
      offline = true;
    }
    if (!offline) for (const p of items) patients.set(p);
    this.items = items;
    this.list.dataset.query = q;
    const where = offline ? ' (offline: among the patients this page has loaded)' : '';
    this.status.textContent = items.length
      ? `${n(items.length)}${items.length === 20 ? '+' : ''} ${items.length === 1 ? 'patient' : 'patients'} found for “${q}”${where}.`
      : `No patient found for “${q}”${where}.`;
    patch(this.list, items.map((p) => `<li class="item result" data-key="${esc(p.id)}" data-patient-id="${esc(p.id)}">
      <span class="avatar avatar--sm" aria-hidden="true">${esc(initials(p.name))}</span>
      <div class="item__main"><div class="item__title">${esc(p.name)}</div><div class="item__sub">${esc(facts(p))}</div></div>
      <div class="item__actions">${this.row(p)}</div></li>`).join(''));
    this.onResults?.(true);
  }
}

// fold lowercases s and drops its accents ("Zoë" → "zoe").
const fold = (s) => String(s || '').normalize('NFD').replace(/\p{M}/gu, '').toLowerCase();

/**
 * localMatches finds patients among those the page holds, the way the
 * server's ?q= does: every word of the query (letters or digits) is the
 * start of a word of the name, the start of the MRN, or — three digits or
 * more — the end of the phone number's digits. At most 20, by name.
 */
function localMatches(q) {
  const words = fold(q).split(/[^\p{L}\p{N}-]+/u).filter((w) => /[\p{L}\p{N}]/u.test(w));
  if (!words.length) return [];
  return patients.all().filter((p) => {
    const names = fold(p.name).split(/[^\p{L}\p{N}]+/u);
    const mrn = fold(p.mrn);
    const phone = String(p.phone || '').replace(/\D/g, '');
    return words.every((w) => names.some((x) => x.startsWith(w)) || (mrn && mrn.startsWith(w))
      || (/^\d{3,}$/.test(w) && phone.endsWith(w)));
  }).sort((a, b) => a.name.localeCompare(b.name)).slice(0, 20);
}

function facts(p) {
  return [p.mrn, p.phone, p.date_of_birth ? `born ${DOB.format(new Date(`${p.date_of_birth}T00:00:00Z`))}` : ''].filter(Boolean).join(' · ');
}

// The toolbar's search: results with Book and Walk-in.
const searchBox = $('.fd-search');
const searchInput = $('#fd-q');
const searchPanel = $('#fd-results');
const topSearch = new PatientSearch({
  input: searchInput, list: $('.fd-results__list'), status: $('#fd-q-status'),
  row: (p) => `<button class="btn btn--sm" type="button" data-action="search-book" data-patient="${esc(p.id)}" aria-label="Book an appointment for ${esc(p.name)}">Book</button>
    <button class="btn btn--sm btn--primary" type="button" data-action="search-walkin" data-patient="${esc(p.id)}" aria-label="Add ${esc(p.name)} as a walk-in">Walk-in</button>`,
  onResults: (show) => { searchPanel.hidden = !show; },
});
function closeSearch() {
  searchPanel.hidden = true;
}
searchInput.addEventListener('focus', () => { if (topSearch.last) searchPanel.hidden = false; });
searchBox.addEventListener('keydown', (e) => {
  if (e.key === 'Escape') { closeSearch(); searchInput.focus(); }
  if (e.key === 'ArrowDown' && e.target === searchInput) { e.preventDefault(); searchPanel.querySelector('button')?.focus(); }
});
document.addEventListener('click', (e) => { if (!searchBox.contains(e.target)) closeSearch(); });
searchBox.addEventListener('focusout', (e) => { if (e.relatedTarget && !searchBox.contains(e.relatedTarget)) closeSearch(); });

/**
 * picker wires a dialog's patient picker (search + choice): pick(p) shows
 * the chosen patient with a Change button; value() is the patient id.
 */
function picker(root, onPick) {
  const input = root.querySelector('input[type=search]');
  const picked = root.querySelector('[data-picked]');
  const picking = root.querySelector('[data-picking]');
  let chosen = null;
  const search = new PatientSearch({
    input, list: root.querySelector('.picker__list'), status: root.querySelector('.picker__status'),
    row: (p) => `<button class="btn btn--sm" type="button" data-pick="${esc(p.id)}" aria-label="Choose ${esc(p.name)}, ${esc(p.mrn || '')}">Choose</button>`,
  });
  const api = {
    pick(p, { fixed = false } = {}) {
      chosen = p;
      if (!p) {
        picked.hidden = true; picking.hidden = false; picked.innerHTML = '';
        return;
      }
      picked.innerHTML = `<span class="avatar avatar--sm" aria-hidden="true">${esc(initials(p.name))}</span>
        <div class="item__main"><div class="item__title" data-picked-name>${esc(p.name)}</div><div class="item__sub">${esc(facts(p))}</div></div>
        ${fixed ? '' : `<button class="btn btn--sm" type="button" data-unpick aria-label="Change patient (now ${esc(p.name)})">Change</button>`}`;
      picked.hidden = false; picking.hidden = true;
      onPick?.(p);
    },
    reset() { search.clear(); input.value = ''; api.pick(null); },
    value() { return chosen?.id || ''; },
    patient() { return chosen; },
    focus() { (chosen ? picked.querySelector('button') || picked : input).focus(); },
  };
  root.addEventListener('click', (e) => {
    const b = e.target.closest('[data-pick]');
    if (b) {
      api.pick(patients.get(b.dataset.pick) || search.items.find((x) => x.id === b.dataset.pick));
      const f = root.closest('form');
      (f.doctor.disabled ? f.elements.namedItem('date') : f.doctor)?.focus();
    }
    if (e.target.closest('[data-unpick]')) { api.pick(null); input.focus(); input.select(); }
  });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      // Enter in the search picks the only result; never submits the form.
      e.preventDefault();
      if (search.items.length === 1) root.querySelector('[data-pick]')?.click();
    }
    if (e.key === 'ArrowDown') { e.preventDefault(); root.querySelector('[data-pick]')?.focus(); }
  });
  return api;
}

// ------------------------------------------------------------------ walk-in

const walkDlg = document.getElementById('walkin');
const walkForm = document.getElementById('walkin-form');
const walkPick = picker(walkForm.querySelector('[data-picker]'));
walkForm.addEventListener('change', (e) => {
  if (e.target.name !== 'who') return;
  for (const el of walkForm.querySelectorAll('[data-who]')) el.classList.toggle('hidden', el.dataset.who !== e.target.value);
});

function doctorOptions(selected) {
  return boardOrder.map((id) => {
    const b = boards.get(id);
    return `<option value="${esc(id)}" ${id === selected ? 'selected' : ''}>${esc(b?.doctor_name || doctors.get(id)?.name)} — ${n(b?.waiting_count ?? 0)} waiting</option>`;
  }).join('');
}

function openWalkin({ patient } = {}) {
  walkForm.reset();
  walkPick.reset();
  walkForm.querySelector('[data-error]').textContent = '';
  for (const el of walkForm.querySelectorAll('[data-who]')) el.classList.toggle('hidden', el.dataset.who !== 'existing');
  walkForm.doctor.innerHTML = doctorOptions();
  if (patient && patients.get(patient)) walkPick.pick(patients.get(patient));
  walkDlg.showModal();
  if (patient) walkForm.doctor.focus(); else walkForm.patient.focus();
}

walkForm.addEventListener('submit', async (e) => {
  if (e.submitter?.value !== 'add') return;
  e.preventDefault();
  const err = walkForm.querySelector('[data-error]');
  err.textContent = '';
  let patient;
  if (walkForm.who.value === 'existing') {
    patient = walkPick.patient();
    if (!patient) { err.textContent = 'Find the patient and choose them from the results.'; walkForm.patient.focus(); return; }
  } else {
    const name = walkForm.elements.namedItem('name').value.trim();
    if (!name || !walkForm.dob.value) { err.textContent = 'Name and date of birth are needed.'; return; }
    const r = await conn.send('POST', '/api/v1/patients', {
      name, date_of_birth: walkForm.dob.value, phone: walkForm.phone.value.trim(), mrn: `WI-${Date.now().toString(36).toUpperCase()}`,
    }, { label: `Register ${name}` });
    if (r.queued) { err.textContent = 'New patients can be registered only while online.'; return; }
    if (!r.ok) { err.textContent = problemText(r.problem, 'Could not register the patient.'); return; }
    patient = r.data;
    patients.set(patient);
  }
  const doctorId = walkForm.doctor.value;
  const btn = walkForm.querySelector('#walkin-add');
  btn.disabled = true;
  const r = await perform(conn, 'POST', '/api/v1/queue', {
    patient_id: patient.id, doctor_id: doctorId, priority: walkForm.priority.value,
  }, { label: `Walk-in ${patient.name}`, quiet: true });
  btn.disabled = false;
  if (r.queued) {
    walkDlg.close();
    pending.set(r.key, { patient_id: patient.id, doctor_id: doctorId, name: patient.name });
    render();
  } else if (r.ok) {
    walkDlg.close();
    queue.set(r.data);
    render();
    toast(`${patient.name} added — token ${label(r.data)}.`, 'ok');
  } else {
    // e.g. 409: already in this doctor's queue today. Keep the dialog open.
    err.textContent = problemText(r.problem, 'Could not add the walk-in.');
    if (r.status === 409) {
      const other = (r.problem?.conflicts || []).map((id) => queue.get(id)).find(Boolean);
      if (other) err.textContent = `${patient.name} is already in ${doctors.get(other.doctor_id)?.name || 'this doctor'}'s queue today (token ${label(other)}, ${chipText(other.status)}).`;
    }
  }
});

// ------------------------------------------------------------------ booking & rescheduling

const bookDlg = document.getElementById('book');
const bookForm = document.getElementById('book-form');
const bookErr = bookForm.querySelector('[data-error]');
const LENGTHS = [10, 15, 20, 30, 45, 60];
bookForm.minutes.innerHTML = LENGTHS.map((m) => `<option value="${m}" ${m === 20 ? 'selected' : ''}>${esc(MIN.format(m))}</option>`).join('');
const bookPick = picker(bookForm.querySelector('[data-picker]'), () => refreshSlots());
let editing = null; // the appointment being rescheduled

function openBooking({ appt, patient } = {}) {
  editing = appt || null;
  bookForm.reset();
  bookPick.reset();
  clearBookError();
  const docs = doctors.all().filter((d) => boards.has(d.id) || d.id === appt?.doctor_id).sort((x, y) => x.name.localeCompare(y.name));
  bookForm.doctor.innerHTML = docs.map((d) => `<option value="${esc(d.id)}">${esc(d.name)}${d.room ? ` · Room ${esc(d.room)}` : ''}</option>`).join('');
  bookForm.date.min = localDay(Date.now());
  const title = bookDlg.querySelector('#book-title');
  const sub = bookDlg.querySelector('[data-book-sub]');
  const submit = bookForm.querySelector('[data-book-submit]');
  if (appt) {
    const p = patients.get(appt.patient_id) || { id: appt.patient_id, name: 'Patient' };
    title.textContent = 'Reschedule appointment';
    sub.textContent = `Now ${SHORT_DAY.format(new Date(appt.starts_at))}, ${hm(appt.starts_at)}–${hm(appt.ends_at)} with ${doctors.get(appt.doctor_id)?.name || 'the doctor'}.`;
    submit.textContent = 'Move appointment';
    bookPick.pick(p, { fixed: true });
    bookForm.doctor.value = appt.doctor_id;
    bookForm.doctor.disabled = true; // an appointment keeps its doctor: book anew for another
    const s = new Date(appt.starts_at);
    bookForm.date.value = localDay(s);
    bookForm.time.value = hhmm(s);
    const len = Math.round((Date.parse(appt.ends_at) - Date.parse(appt.starts_at)) / 60000);
    if (!LENGTHS.includes(len)) bookForm.minutes.insertAdjacentHTML('beforeend', `<option value="${len}">${esc(MIN.format(len))}</option>`);
    bookForm.minutes.value = String(len);
    bookForm.reason.value = appt.reason || '';
  } else {
    title.textContent = 'New appointment';
    sub.textContent = 'Pick the patient, the doctor and a free time.';
    submit.textContent = 'Book appointment';
    bookForm.doctor.disabled = false;
    bookForm.date.value = apptDay >= localDay(Date.now()) ? apptDay : localDay(Date.now());
    if (patient && patients.get(patient)) bookPick.pick(patients.get(patient));
  }
  bookDlg.showModal();
  refreshSlots();
  if (appt || patient) bookForm.date.focus(); else bookForm.patient.focus();
}

for (const name of ['doctor', 'date', 'minutes']) bookForm[name].addEventListener('change', () => { clearBookError(); refreshSlots(); });
bookForm.time.addEventListener('input', () => { clearBookError(); markSlot(); });

// Free times: the chosen doctor's appointments of the day, read from the
// server, give the starts (every 5 minutes, 08:00–18:00 in this browser's
// time) where a slot of the chosen length is free. When the day has none
// left (late in the day, or fully booked), the next day with free times
// (within a week) is offered instead: picking one of its times moves the
// date too. The API's 409 stays the judge: this is a hint.
let slotSeq = 0;

/** freeTimes returns the free starts (ms) of a doctor's day, or null if the read failed. */
async function freeTimes(doctorId, date, len) {
  let busy;
  try {
    busy = (await listAll(`/api/v1/appointments?doctor_id=${encodeURIComponent(doctorId)}&date=${date}`)).items;
  } catch { return null; }
  busy = busy.filter((a) => ['scheduled', 'checked_in', 'in_consultation'].includes(a.status) && a.id !== editing?.id)
    .map((a) => [Date.parse(a.starts_at), Date.parse(a.ends_at)]);
  const free = [];
  const open = new Date(`${date}T08:00:00`).getTime();
  const close = new Date(`${date}T18:00:00`).getTime();
  const earliest = Date.now() - 5 * 60000;
  for (let t = open; t + len * 60000 <= close && free.length < 24; t += 5 * 60000) {
    if (t < earliest) continue;
    const end = t + len * 60000;
    if (busy.some(([s, e]) => s < end && t < e)) continue;
    // Offer the starts on the slot grid (or right after a booking ends).
    if (new Date(t).getMinutes() % Math.min(len, 15) !== 0 && !busy.some(([, e]) => e === t)) continue;
    free.push(t);
  }
  return free;
}

async function refreshSlots() {
  const box = bookForm.querySelector('[data-slots]');
  const slotsLabel = bookForm.querySelector('[data-slots-label]');
  const doctorId = bookForm.doctor.value;
  const date = bookForm.date.value;
  const len = Number(bookForm.minutes.value) || 20;
  if (!doctorId || !/^\d{4}-\d{2}-\d{2}$/.test(date)) { box.innerHTML = ''; slotsLabel.textContent = 'Free times'; return; }
  const seq = ++slotSeq;
  let free = await freeTimes(doctorId, date, len);
  if (free === null || seq !== slotSeq) return;
  const doc = doctors.get(doctorId)?.name || 'the doctor';
  let day = date;
  if (!free.length) {
    for (let i = 1; i <= 7 && !free.length; i++) {
      day = localDay(dayDate(date).getTime() + i * 86400000);
      free = await freeTimes(doctorId, day, len);
      if (free === null || seq !== slotSeq) return;
    }
  }
  const none = `No free ${MIN.format(len)} time with ${doc} on ${SHORT_DAY.format(dayDate(date))} between 8:00 and 18:00`;
  slotsLabel.textContent = !free.length
    ? `${none}, nor in the week after.`
    : day === date
      ? `Free times with ${doc} (${MIN.format(len)}), ${SHORT_DAY.format(dayDate(date))}`
      : `${none}. The next free times, on ${SHORT_DAY.format(dayDate(day))}:`;
  patch(box, free.map((t) => `<button class="btn btn--sm slot" type="button" data-key="${day}-${t}" data-slot="${hhmm(new Date(t))}" data-day="${day}"
    aria-pressed="false" aria-label="${esc(`${SHORT_DAY.format(dayDate(day))}, ${TIME.format(new Date(t))}`)}">${esc(TIME.format(new Date(t)))}</button>`).join(''));
  markSlot();
}

function markSlot() {
  for (const b of bookForm.querySelectorAll('[data-slot]')) {
    b.setAttribute('aria-pressed', String(b.dataset.slot === bookForm.time.value && b.dataset.day === bookForm.date.value));
  }
}

bookForm.querySelector('[data-slots]').addEventListener('click', (e) => {
  const b = e.target.closest('[data-slot]');
  if (!b) return;
  bookForm.time.value = b.dataset.slot;
  if (b.dataset.day && b.dataset.day !== bookForm.date.value) {
    bookForm.date.value = b.dataset.day; // a time of the next free day: that day's times now
    refreshSlots();
  }
  clearBookError();
  markSlot();
});

function clearBookError() {
  bookErr.innerHTML = '';
  bookErr.classList.remove('form-error--on');
  for (const el of bookForm.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
}

function showBookError(html, fields = []) {
  bookErr.innerHTML = html;
  bookErr.classList.add('form-error--on');
  const map = { starts_at: 'time', ends_at: 'minutes', doctor_id: 'time', patient_id: 'time', reason: 'reason', status: 'time' };
  for (const f of fields) bookForm[map[f] || f]?.setAttribute?.('aria-invalid', 'true');
}

// conflictText describes a 409's conflicting appointments, reading the
// ones the page does not hold.
async function conflictText(problem) {
  const field = problem?.errors?.[0]?.field;
  const ids = problem?.conflicts || [];
  const found = [];
  for (const id of ids.slice(0, 3)) {
    let a = appts.get(id);
    if (!a) { try { a = await apiGet(`/api/v1/appointments/${encodeURIComponent(id)}`); appts.set(a); } catch { /* gone */ } }
    if (a) found.push(a);
  }
  const whoBusy = field === 'patient_id' ? (bookPick.patient()?.name || 'The patient') : (doctors.get(bookForm.doctor.value)?.name || 'The doctor');
  if (!found.length) return `<b>That time is taken.</b> ${esc(problem?.detail || '')}`;
  const parts = found.map((a) => `${hm(a.starts_at)}–${hm(a.ends_at)} (${field === 'patient_id' ? `with ${doctors.get(a.doctor_id)?.name || 'a doctor'}` : (patients.get(a.patient_id)?.name || 'another patient')})`);
  return `<b>That time is taken.</b> ${esc(whoBusy)} already has ${found.length === 1 ? 'an appointment' : 'appointments'} at ${esc(LIST.format(parts))} on ${esc(SHORT_DAY.format(new Date(found[0].starts_at)))}. Choose a free time.`;
}

bookForm.addEventListener('submit', async (e) => {
  if (e.submitter && e.submitter.value !== 'save') return;
  e.preventDefault();
  clearBookError();
  const patient = bookPick.patient();
  const missing = [];
  if (!patient) missing.push('the patient');
  if (!bookForm.doctor.value) missing.push('the doctor');
  if (!bookForm.date.value) missing.push('the date');
  if (!bookForm.time.value) missing.push('the time');
  if (missing.length) {
    showBookError(`Choose ${esc(LIST.format(missing))}.`, missing.includes('the time') ? ['time'] : []);
    return;
  }
  const start = new Date(`${bookForm.date.value}T${bookForm.time.value}:00`);
  const end = new Date(start.getTime() + Number(bookForm.minutes.value) * 60000);
  const body = { starts_at: start.toISOString(), ends_at: end.toISOString(), reason: bookForm.reason.value.trim() };
  const submit = bookForm.querySelector('[data-book-submit]');
  submit.disabled = true;
  let r;
  try {
    if (editing) {
      const cur = appts.server(editing.id) || editing;
      r = await perform(conn, 'PATCH', `/api/v1/appointments/${editing.id}`, body, {
        ifMatch: cur.version, label: `Reschedule ${patient.name}`, quiet: true,
        optimistic: appts.optimistic(editing.id, { starts_at: body.starts_at, ends_at: body.ends_at, reason: body.reason }, render),
      });
    } else {
      r = await perform(conn, 'POST', '/api/v1/appointments', { patient_id: patient.id, doctor_id: bookForm.doctor.value, ...body }, {
        label: `Book ${patient.name}`, quiet: true,
      });
    }
  } finally {
    submit.disabled = false;
  }
  if (r.queued) { bookDlg.close(); return; }
  if (r.ok) {
    appts.set(r.data);
    const doc = doctors.get(r.data.doctor_id)?.name || 'the doctor';
    const msg = `${patient.name} ${editing ? 'moved to' : 'booked for'} ${SHORT_DAY.format(start)}, ${hm(r.data.starts_at)} with ${doc}.`;
    bookDlg.close();
    // Show the day of the appointment in the list.
    if (localDay(r.data.starts_at) !== apptDay) { R.apptDay.value = localDay(r.data.starts_at); R.apptDay.dispatchEvent(new Event('change')); }
    render();
    toast(msg, 'ok');
    say(msg);
    return;
  }
  const fields = (r.problem?.errors || []).map((x) => x.field);
  if (r.status === 409 && (r.problem?.conflicts || []).length) {
    showBookError(await conflictText(r.problem), fields);
    refreshSlots();
  } else if (r.status === 412 || r.status === 409) {
    // Someone changed the appointment meanwhile: show what it is now.
    const now = editing ? await appts.refresh(editing.id, render) : null;
    if (now && now.status === 'scheduled') {
      editing = now;
      showBookError(`<b>Someone changed this appointment meanwhile.</b> It is now ${esc(SHORT_DAY.format(new Date(now.starts_at)))}, ${esc(hm(now.starts_at))}–${esc(hm(now.ends_at))}. Check the time and try again.`);
    } else if (now) {
      showBookError(`<b>This appointment can no longer be moved:</b> it is ${esc(chipText(now.status))} now.`);
      bookForm.querySelector('[data-book-submit]').disabled = true;
    } else {
      showBookError(`<b>Not saved:</b> ${esc(problemText(r.problem, 'the appointment changed meanwhile'))}`);
    }
  } else if (r.status === 404 && editing) {
    showBookError('<b>This appointment no longer exists.</b>');
  } else {
    showBookError(`<b>Not saved:</b> ${esc(problemText(r.problem, 'the server refused the booking'))}`, fields);
  }
});

bookDlg.addEventListener('close', () => { editing = null; bookForm.querySelector('[data-book-submit]').disabled = false; });

// ------------------------------------------------------------------ cancelling an appointment

const confirmDlg = document.getElementById('confirm');
function confirmAction(text) {
  confirmDlg.querySelector('#confirm-text').textContent = text;
  confirmDlg.returnValue = '';
  confirmDlg.showModal();
  return new Promise((resolve) => confirmDlg.addEventListener('close', () => resolve(confirmDlg.returnValue === 'yes'), { once: true }));
}

async function cancelAppointment(id) {
  const a = appts.get(id);
  if (!a) return;
  const p = patients.get(a.patient_id);
  const doc = doctors.get(a.doctor_id)?.name || 'the doctor';
  const note = a.status === 'checked_in' ? ' The patient is checked in: their queue entry is cancelled too.' : '';
  if (!(await confirmAction(`Cancel ${p?.name || 'the patient'}'s appointment with ${doc} on ${SHORT_DAY.format(new Date(a.starts_at))} at ${hm(a.starts_at)}?${note}`))) return;
  const r = await perform(conn, 'PATCH', `/api/v1/appointments/${id}`, { status: 'cancelled' }, {
    ifMatch: appts.server(id).version, label: `Cancel ${p?.name || ''}'s appointment`.trim(), optimistic: appts.optimisticStatus(id, 'cancelled', render),
  });
  if (r.ok && !r.queued) say(`${p?.name ? `${p.name}'s` : 'The'} appointment at ${hm(a.starts_at)} cancelled`);
}

// ------------------------------------------------------------------ helpers

function chipText(status) {
  return { waiting: 'waiting', called: 'called', in_progress: 'with the doctor', completed: 'done', no_show: 'a no-show', cancelled: 'cancelled', scheduled: 'scheduled', checked_in: 'checked in', in_consultation: 'in consultation' }[status] || status;
}

function problemText(p, fallback) {
  if (!p) return fallback;
  const e = p.errors?.[0];
  return e ? `${e.field.replace(/_/g, ' ')}: ${e.message}` : (p.detail || p.title || fallback);
}

// ------------------------------------------------------------------ start

const since = await load();
draw();
app.removeAttribute('aria-busy');

conn = live({
  since,
  onEvent(ev) {
    if (ev.type === 'queue.board') {
      if (ev.data.day !== day) { reload(); return; }
      if (ev.data.archived) { boards.delete(ev.id); boardOrder = boardOrder.filter((x) => x !== ev.id); render(); return; }
      if (!boards.has(ev.id)) boardOrder.push(ev.id);
      boards.set(ev.id, ev.data);
    } else {
      if (ev.entity === 'queue') noteQueueChange(ev);
      for (const r of [queue, appts, patients, doctors]) r.apply(ev);
    }
    render();
  },
  async onReset() {
    const c = await load();
    render();
    return c;
  },
});
conn.addEventListener('write', (e) => {
  if (pending.delete(e.detail.key)) render();
});

async function reload() {
  const wasToday = apptDay === day;
  day = '';
  if (wasToday) apptDay = '';
  await conn.onReset();
}
