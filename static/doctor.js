// Doctor: my queue, call next, the consultation (notes, prescription,
// invoice), close the visit — live.
//
// Whose queue. A doctor's token opens the doctor's own queue, where every
// action is theirs. Any other queue (another doctor's, chosen in the header,
// or any queue for an admin or coordinator) is shown read-only with a note
// saying so: the API lets only the visit's doctor prescribe, there is no
// covering doctor (README, "Prescriptions"), and calls and check-ins for
// someone else's queue belong to the front desk. A doctor who covers for a
// colleague sees the patients in their own queue, queued there by the desk.
//
// Notices appear in a reserved slot of the toolbar, so they never cover a
// button; a refusal that needs attention (a second invoice) is shown in its
// section until dismissed.
import {
  signIn, shell, live, perform, apiGet, listAll, Records, esc, chip, time, longDate,
  initials, money, frame, today, toast, patch, count, duration, years, shortDate, label,
} from './app.js';

const { claims } = await signIn({ roles: ['doctor', 'admin', 'coordinator', 'platform'] });
const header = shell({ title: 'Doctor', subtitle: 'Consultations', claims, extra: '<select class="doctor-pick" aria-label="Whose queue" style="width:auto"></select>' });
const app = document.getElementById('app');
const pick = header.querySelector('.doctor-pick');

const EMPTY_ICON = `<svg width="64" height="64" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="1.5" aria-hidden="true"><path d="M4.8 2.3A.3.3 0 1 0 5 2H4a2 2 0 0 0-2 2v5a6 6 0 0 0 6 6a6 6 0 0 0 6-6V4a2 2 0 0 0-2-2h-1a.2.2 0 1 0 .3.3"/><path d="M8 15v1a6 6 0 0 0 6 6a6 6 0 0 0 6-6v-4"/><circle cx="20" cy="10" r="2"/></svg>`;

const doctors = new Records('doctors');
const patients = new Records('patients');
const queue = new Records('queue');
const appts = new Records('appointments');
const visits = new Records('visits');
const rxs = new Records('prescriptions');
const invoices = new Records('invoices');
let board = null;
let day = '';
let me = ''; // the doctor whose queue is shown
const self = claims.role === 'doctor' ? claims.sub : ''; // the signed-in doctor, if any

/** editable: the page's actions are the signed-in doctor's own. */
const editable = () => !!self && me === self;

async function load() {
  const b0 = await apiGet('/api/v1/queue/board');
  day = today(b0.boards);
  const d = await listAll('/api/v1/doctors');
  doctors.reset(d.items);
  // ?doctor=<id> names the queue; else a doctor's own; else the one chosen
  // on this device; else the first.
  const asked = new URLSearchParams(location.search).get('doctor');
  me = [asked, self, self ? '' : localStorage.getItem('clinicpulse.doctor')].find((x) => x && doctors.get(x)) || '';
  if (!me) me = d.items.sort((a, b) => a.name.localeCompare(b.name))[0]?.id || '';
  const [p, q, a, v] = await Promise.all([
    listAll('/api/v1/patients'), listAll(`/api/v1/queue?date=${day}&doctor_id=${me}`),
    listAll(`/api/v1/appointments?date=${day}&doctor_id=${me}`), listAll(`/api/v1/visits?doctor_id=${me}&status=open`),
  ]);
  patients.reset(p.items); queue.reset(q.items); appts.reset(a.items); visits.reset(v.items);
  let cursor = Math.min(d.cursor, p.cursor, q.cursor, a.cursor, v.cursor);
  const rx = []; const inv = [];
  for (const visit of v.items) {
    const [r, i] = await Promise.all([listAll(`/api/v1/prescriptions?visit_id=${visit.id}`), listAll(`/api/v1/invoices?visit_id=${visit.id}`)]);
    rx.push(...r.items); inv.push(...i.items);
    cursor = Math.min(cursor, r.cursor, i.cursor);
  }
  rxs.reset(rx); invoices.reset(inv);
  const b = await apiGet('/api/v1/queue/board');
  board = b.boards.find((x) => x.doctor_id === me) || null;
  pick.innerHTML = doctors.all().sort((x, y) => x.name.localeCompare(y.name))
    .map((x) => `<option value="${esc(x.id)}" ${x.id === me ? 'selected' : ''}>${esc(x.name)}${x.id === self ? ' (you)' : ''}</option>`).join('');
  return cursor;
}

pick.addEventListener('change', () => {
  if (!self) localStorage.setItem('clinicpulse.doctor', pick.value);
  const u = new URL(location.href);
  if (pick.value === self) u.searchParams.delete('doctor'); else u.searchParams.set('doctor', pick.value);
  location.assign(u);
});

const since = await load();
app.innerHTML = `
  <div class="toolbar doctor-bar">
    <div><h2 data-title></h2><p class="muted small">${esc(longDate(day))}</p></div>
    <div class="toasts toasts--inline" data-notices role="status" aria-live="polite"></div>
    <div class="stats" data-stats></div>
    <button class="btn btn--primary btn--lg" data-action="call-next">Call next patient</button>
  </div>
  <div class="readonly-note" data-readonly role="note" hidden></div>
  <p class="sr-only" data-queue-status role="status" aria-live="polite"></p>
  <div class="layout layout--doctor">
    <section class="card" aria-labelledby="queue-title">
      <div class="card__head"><h2 id="queue-title" data-queue-title>My queue</h2><span class="count" data-count></span></div>
      <ul class="list" data-queue></ul>
    </section>
    <section class="card" data-consult aria-label="Consultation"></section>
  </div>`;
app.removeAttribute('aria-busy');
const $ = (sel) => app.querySelector(sel);
let shownVisit = null;
let shownInvoiceForm = null; // the visit whose invoice form is on screen
let invoiceAlert = ''; // a refusal shown in the invoice section

const render = frame(draw);
draw();

const conn = live({
  since,
  onEvent(ev) {
    if (ev.type === 'queue.board') {
      if (ev.id === me) board = ev.data;
    } else if (ev.entity === 'queue') {
      if (ev.data?.doctor_id === me || queue.get(ev.id)) queue.apply(ev);
    } else if (ev.entity === 'visits') {
      if (ev.data?.doctor_id === me || visits.get(ev.id)) visits.apply(ev);
    } else if (ev.entity === 'appointments') {
      if (ev.data?.doctor_id === me || appts.get(ev.id)) appts.apply(ev);
    } else {
      for (const r of [patients, doctors, rxs, invoices]) r.apply(ev);
    }
    render();
  },
  async onReset() {
    const c = await load();
    shownVisit = null;
    render();
    return c;
  },
});

// ------------------------------------------------------------------ view

function ordered() {
  const order = new Map((board?.waiting || []).map((t, i) => [t, i]));
  const rank = { in_progress: 0, called: 1, waiting: 2 };
  return queue.all().filter((q) => q.day === day && rank[q.status] !== undefined)
    .sort((x, y) => rank[x.status] - rank[y.status] || (order.get(x.token) ?? 1e9) - (order.get(y.token) ?? 1e9) || x.token - y.token);
}

function openVisit() {
  return visits.all().find((v) => v.status === 'open' && v.doctor_id === me) || null;
}

function draw() {
  const d = doctors.get(me);
  const own = editable();
  $('[data-title]').textContent = d ? `${d.name} · Room ${d.room}` : 'No doctor';
  $('[data-queue-title]').textContent = own ? 'My queue' : `${d ? d.name : 'Doctor'}’s queue`;
  const note = $('[data-readonly]');
  note.hidden = own;
  if (!own) {
    const mine = self ? `<button class="btn btn--sm" data-action="my-queue">Back to my queue</button>` : '';
    patch(note, `<b>Read only.</b> <span>${self
      ? `This is ${esc(d?.name || 'another doctor')}’s queue. Only ${esc(d?.name || 'they')} calls, sees and prescribes for these patients (a prescription belongs to the visit’s doctor). To see one of them yourself, ask the front desk to queue the patient with you.`
      : `Only ${esc(d?.name || 'the doctor')} works this queue: calls, consultations and prescriptions are the doctor’s. Calls and check-ins for the front desk are on the front-desk page.`}</span>${mine}`);
  }
  const list = ordered();
  const done = queue.all().filter((q) => q.day === day && q.status === 'completed').length;
  const waiting = board?.waiting_count ?? list.filter((q) => q.status === 'waiting').length;
  patch($('[data-stats]'), `
    <div class="stat" data-stat="queue" title="Patients in the queue: waiting, called and in consultation"><b>${esc(count(list.length))}</b><span>Queue length</span></div>
    <div class="stat" data-stat="wait"><b>${esc(duration(board?.estimated_wait_minutes || 0))}</b><span>Wait for a new patient</span></div>
    <div class="stat" data-stat="seen"><b>${esc(count(done))}</b><span>Seen today</span></div>`);
  $('[data-count]').textContent = count(list.length);
  const call = $('[data-action="call-next"]');
  call.hidden = !own;
  call.disabled = !list.some((q) => q.status === 'waiting');
  patch($('[data-queue]'), list.map(drawEntry).join('') || `<li class="empty" data-key="empty">${own ? 'Your queue is empty.' : 'The queue is empty.'}</li>`);
  const withDoctor = list.filter((q) => q.status === 'in_progress').length;
  $('[data-queue-status]').textContent = `${count(waiting)} waiting, ${count(list.filter((q) => q.status === 'called').length)} called, ${count(withDoctor)} in consultation`;
  const v = openVisit();
  if ((v?.id || null) !== shownVisit || !v) drawConsult(v, list);
  else drawVisitLists(v);
}

function drawEntry(q) {
  const p = patients.get(q.patient_id);
  const pos = (board?.waiting || []).indexOf(q.token) + 1;
  const sub = q.status === 'waiting' ? `#${pos || q.position} in line` : q.status === 'called' ? 'Called — on the way' : 'In consultation';
  let actions = '';
  if (editable()) {
    if (q.status === 'called' && !openVisit()) actions = `<button class="btn btn--sm btn--primary" data-action="start" data-id="${esc(q.id)}" aria-label="Start consultation with ${esc(label(q))}">Start</button>`;
    if (q.status === 'called') actions += `<button class="btn btn--sm btn--danger" data-action="no-show" data-id="${esc(q.id)}" aria-label="Mark ${esc(label(q))} as no-show">No-show</button>`;
  }
  return `<li class="item ${q.status !== 'waiting' ? 'item--active' : ''}" data-key="${esc(q.id)}" data-entry-id="${esc(q.id)}" data-token="${q.token}" data-status="${esc(q.status)}">
    <span class="token token--${esc(q.status)}">${esc(label(q))}</span>
    <div class="item__main"><div class="item__title">${esc(p?.name || 'Patient')}</div>
      <div class="item__sub">${q.priority !== 'normal' ? `${chip(q.priority)} ` : ''}${esc(sub)}${p?.date_of_birth ? ` · ${esc(years(p.date_of_birth))}` : ''}</div></div>
    <div class="item__actions">${actions}</div></li>`;
}

function drawConsult(v, list) {
  const el = $('[data-consult]');
  shownVisit = v?.id || null;
  shownInvoiceForm = null;
  invoiceAlert = '';
  if (!v) {
    const called = list.find((q) => q.status === 'called');
    const p = called && patients.get(called.patient_id);
    const own = editable();
    el.innerHTML = `<div class="empty-state">${EMPTY_ICON}
      ${called ? `<h2>${esc(label(called))} ${esc(p?.name || 'Patient')} is on the way</h2>
        ${own ? `<p>Start the consultation when they arrive.</p>
        <p style="margin-top:1rem"><button class="btn btn--primary btn--lg" data-action="start" data-id="${esc(called.id)}">Start consultation</button></p>` : ''}`
      : `<h2>No patient in consultation</h2><p>${own ? 'Call the next patient when you are ready.' : 'Nobody is with this doctor now.'}</p>`}</div>`;
    return;
  }
  const p = patients.get(v.patient_id) || {};
  const entry = queue.get(v.queue_entry_id);
  const appt = appts.get(v.appointment_id);
  const own = editable();
  const ro = own ? '' : ' disabled';
  el.innerHTML = `
    <div class="consult stack">
      <div class="patient-head">
        <span class="avatar" aria-hidden="true">${esc(initials(p.name))}</span>
        <div style="flex:1"><h2 data-patient-name>${esc(p.name || 'Patient')}</h2>
          <div class="muted">${entry ? `Token ${esc(label(entry))} · ` : ''}started ${esc(time(v.created_at))}</div></div>
        ${chip('in_progress')}
      </div>
      <div class="facts">
        <div><small>Age</small><b>${esc(years(p.date_of_birth)) || '—'}</b></div>
        <div><small>Date of birth</small><b>${esc(shortDate(p.date_of_birth)) || '—'}</b></div>
        <div><small>MRN</small><b>${esc(p.mrn || '—')}</b></div>
        <div><small>Reason</small><b>${esc(appt?.reason || 'Walk-in')}</b></div>
      </div>
      <label class="field"><span>Consultation notes</span>
        <textarea name="notes" rows="4" placeholder="History, findings, plan…"${ro}>${esc(v.notes || '')}</textarea></label>
      ${own ? '<div class="row"><span class="spacer"></span><button class="btn btn--sm" data-action="save-notes">Save notes</button></div>' : ''}

      <h3 class="section-title" id="rx-title">Prescription</h3>
      <ul class="list card" data-rx-list aria-labelledby="rx-title"></ul>
      ${own ? `<form class="lines" data-rx-form aria-label="New prescription">
        <div class="lines" data-rx-lines></div>
        <div class="row"><button type="button" class="btn btn--sm btn--ghost" data-action="rx-line">+ Add medicine</button>
          <span class="spacer"></span><button class="btn btn--sm btn--primary" type="submit">Save prescription</button></div>
      </form>` : ''}

      <h3 class="section-title" id="inv-title">Invoice</h3>
      <div class="inline-alert" data-inv-alert role="alert" tabindex="-1" hidden></div>
      <ul class="list card" data-inv-list aria-labelledby="inv-title"></ul>
      <div data-inv-slot></div>
    </div>
    ${own ? `<div class="card__foot"><span class="muted small" style="margin-right:auto">Closing completes the visit, the queue entry and the appointment.</span>
      <button class="btn btn--primary" data-action="close-visit">Close visit</button></div>` : ''}`;
  if (own) addRxLine();
  drawVisitLists(v);
}

// liveInvoice is the visit's invoice that is not void (a visit has at most one).
function liveInvoice(v) {
  return invoices.all().find((i) => i.visit_id === v.id && i.status !== 'void') || null;
}

function drawVisitLists(v) {
  const rl = $('[data-rx-list]');
  const il = $('[data-inv-list]');
  if (!rl || !il) return;
  const rx = rxs.all().filter((r) => r.visit_id === v.id);
  patch(rl, rx.flatMap((r) => r.items.map((i, n) => `<li class="item" data-key="${esc(r.id)}-${n}"><div class="item__main">
      <div class="item__title">${esc(i.drug)} ${esc(i.dose)}</div>
      <div class="item__sub">${esc([i.route, i.frequency, i.duration].filter(Boolean).join(' · '))}</div></div>${chip('issued')}</li>`)).join('')
    || '<li class="empty" data-key="empty">No medicines prescribed yet.</li>');
  const inv = invoices.all().filter((i) => i.visit_id === v.id);
  patch(il, inv.map((i) => `<li class="item" data-key="${esc(i.id)}" data-invoice-id="${esc(i.id)}"><div class="item__main">
      <div class="item__title">${esc(i.lines.map((l) => l.description).join(', '))}</div>
      <div class="item__sub">${esc(count(i.lines.length))} line${i.lines.length === 1 ? '' : 's'}</div></div>
      <b>${esc(money(i.total, i.currency))}</b> ${chip(i.status)}</li>`).join('')
    || '<li class="empty" data-key="empty">No invoice yet.</li>');
  // The invoice form: only while the visit has no invoice (a second one is
  // refused by the API), built fresh each time it appears.
  const slot = $('[data-inv-slot]');
  const existing = liveInvoice(v);
  const want = editable() && !existing ? v.id : null;
  if (want !== shownInvoiceForm) {
    shownInvoiceForm = want;
    slot.innerHTML = want ? invoiceForm() : existing && editable()
      ? '<p class="muted small" data-inv-done>This visit is invoiced. A visit has one invoice; to replace it, it must be voided first.</p>' : '';
    if (want) addInvLine({ description: 'Consultation', quantity: 1, unit_price: 60 });
  }
  const alert = $('[data-inv-alert]');
  alert.hidden = !invoiceAlert;
  if (invoiceAlert) patch(alert, invoiceAlert);
}

function invoiceForm() {
  return `<form class="lines" data-inv-form aria-label="New invoice">
    <div class="lines" data-inv-lines></div>
    <div class="row"><button type="button" class="btn btn--sm btn--ghost" data-action="inv-line">+ Add line</button>
      <span class="spacer"></span>
      <select name="currency" style="width:auto" aria-label="Currency"><option>USD</option><option>EUR</option><option>GBP</option></select>
      <span class="total" data-inv-total aria-live="polite"></span>
      <button class="btn btn--sm btn--primary" type="submit">Create invoice</button></div>
  </form>`;
}

let lineSeq = 0;
function addRxLine() {
  const box = $('[data-rx-lines]');
  if (!box) return;
  const row = document.createElement('div');
  const n = ++lineSeq;
  row.className = 'line line--rx';
  row.innerHTML = `<input name="drug" placeholder="Medicine" aria-label="Medicine ${n}" required><input name="dose" placeholder="Dose" aria-label="Dose" required>
    <select name="route" aria-label="Route"><option>oral</option><option>topical</option><option>inhaled</option><option>IM</option><option>IV</option></select>
    <input name="frequency" placeholder="Frequency" aria-label="Frequency" value="twice daily"><input name="duration" placeholder="Duration" aria-label="Duration" value="7 days">
    <button type="button" class="btn btn--sm btn--ghost" data-action="remove-line" aria-label="Remove this medicine" title="Remove">✕</button>`;
  box.append(row);
}

function addInvLine(l = {}) {
  const box = $('[data-inv-lines]');
  if (!box) return;
  const row = document.createElement('div');
  row.className = 'line line--inv';
  row.innerHTML = `<input name="description" placeholder="Description" aria-label="Description" required value="${esc(l.description || '')}">
    <input name="quantity" type="number" min="1" value="${l.quantity || 1}" aria-label="Quantity">
    <input name="unit_price" type="number" min="0" step="0.01" value="${l.unit_price ?? ''}" placeholder="Unit price" aria-label="Unit price">
    <button type="button" class="btn btn--sm btn--ghost" data-action="remove-line" aria-label="Remove this line" title="Remove">✕</button>`;
  box.append(row);
  invTotal();
}

function invLines() {
  return [...app.querySelectorAll('.line--inv')].map((r) => ({
    description: r.querySelector('[name=description]').value.trim(),
    quantity: Number(r.querySelector('[name=quantity]').value) || 0,
    unit_price: Math.round(Number(r.querySelector('[name=unit_price]').value) * 100) || 0,
  })).filter((l) => l.description);
}

function invTotal() {
  const el = $('[data-inv-total]');
  const cur = app.querySelector('[data-inv-form] [name=currency]')?.value || 'USD';
  if (el) el.textContent = money(invLines().reduce((s, l) => s + l.quantity * l.unit_price, 0), cur);
}

app.addEventListener('input', (e) => { if (e.target.closest('[data-inv-form]')) invTotal(); });
app.addEventListener('change', (e) => { if (e.target.closest('[data-inv-form]')) invTotal(); });

// ------------------------------------------------------------------ actions

app.addEventListener('click', async (e) => {
  const btn = e.target.closest('[data-action]');
  if (!btn) return;
  if (btn.dataset.action === 'my-queue') {
    const u = new URL(location.href);
    u.searchParams.delete('doctor');
    location.assign(u);
    return;
  }
  if (btn.dataset.action === 'dismiss-invoice-alert') {
    invoiceAlert = '';
    render();
    return;
  }
  if (!editable()) return; // read only: the page offers no action here
  const v = openVisit();
  switch (btn.dataset.action) {
    case 'call-next': {
      const next = ordered().find((q) => q.status === 'waiting');
      if (!next) return;
      await perform(conn, 'PATCH', `/api/v1/queue/${next.id}`, { status: 'called' }, {
        ifMatch: next.version, label: `Call ${label(next)}`, optimistic: queue.optimisticStatus(next.id, 'called', render),
      });
      break;
    }
    case 'no-show': {
      const q = queue.get(btn.dataset.id);
      await perform(conn, 'PATCH', `/api/v1/queue/${q.id}`, { status: 'no_show' }, {
        ifMatch: q.version, label: `No-show ${label(q)}`, optimistic: queue.optimisticStatus(q.id, 'no_show', render),
      });
      break;
    }
    case 'start': {
      btn.disabled = true;
      const r = await perform(conn, 'POST', '/api/v1/visits', { queue_entry_id: btn.dataset.id }, { label: 'Start consultation' });
      if (r.ok && !r.queued) { visits.set(r.data); render(); }
      break;
    }
    case 'save-notes': {
      const notes = app.querySelector('[name=notes]').value;
      const r = await perform(conn, 'PATCH', `/api/v1/visits/${v.id}`, { notes }, { ifMatch: v.version, label: 'Save notes' });
      if (r.ok && !r.queued) { visits.set(r.data); toast('Notes saved.', 'ok', 2500); }
      break;
    }
    case 'rx-line': addRxLine(); break;
    case 'inv-line': addInvLine(); break;
    case 'remove-line': btn.closest('.line').remove(); invTotal(); break;
    case 'close-visit': {
      const notes = app.querySelector('[name=notes]')?.value;
      const body = notes !== undefined && notes !== v.notes ? { notes, status: 'closed' } : { status: 'closed' };
      btn.disabled = true;
      const r = await perform(conn, 'PATCH', `/api/v1/visits/${v.id}`, body, {
        ifMatch: v.version, label: 'Close visit', optimistic: visits.optimisticStatus(v.id, 'closed', render),
      });
      if (r.ok && !r.queued) toast('Visit closed.', 'ok', 2500);
      break;
    }
  }
});

app.addEventListener('submit', async (e) => {
  e.preventDefault();
  const v = openVisit();
  if (!v || !editable()) return;
  const submit = e.target.querySelector('[type=submit]');
  if (e.target.matches('[data-rx-form]')) {
    const items = [...app.querySelectorAll('.line--rx')].map((r) => Object.fromEntries(
      ['drug', 'dose', 'route', 'frequency', 'duration'].map((k) => [k, r.querySelector(`[name=${k}]`).value.trim()])))
      .filter((i) => i.drug);
    if (!items.length) return;
    submit.disabled = true;
    const r = await perform(conn, 'POST', '/api/v1/prescriptions', { visit_id: v.id, items }, { label: 'Save prescription' });
    submit.disabled = false;
    if (r.ok && !r.queued) {
      rxs.set(r.data);
      $('[data-rx-lines]').innerHTML = '';
      addRxLine();
      drawVisitLists(v);
      toast('Prescription saved.', 'ok', 2500);
    } else if (!r.ok) toast(`Prescription not saved: ${r.problem?.detail || r.status}`, 'error');
  } else if (e.target.matches('[data-inv-form]')) {
    const lines = invLines();
    if (!lines.length) return;
    const currency = e.target.currency.value;
    submit.disabled = true; // one click, one invoice
    const r = await perform(conn, 'POST', '/api/v1/invoices', { visit_id: v.id, currency, lines }, { label: 'Create invoice' });
    if (r.ok && !r.queued) {
      invoices.set(r.data);
      invoiceAlert = '';
      drawVisitLists(v); // the form goes: the visit has its invoice
      toast(`Invoice created: ${money(r.data.total, r.data.currency)}.`, 'ok', 2500);
    } else if (!r.ok) {
      submit.disabled = false;
      invoiceAlert = refusal(r);
      // The invoice that exists (another tab or colleague made it) is read
      // now rather than waiting for its event.
      if (r.status === 409) {
        try { for (const i of (await listAll(`/api/v1/invoices?visit_id=${v.id}`)).items) invoices.set(i); } catch { /* the event brings it */ }
      }
      drawVisitLists(v);
      $('[data-inv-alert]')?.focus?.();
    }
  }
});

// refusal words the API's answer to an invoice it did not create.
function refusal(r) {
  const detail = r.problem?.detail || r.problem?.title || `error ${r.status}`;
  const head = r.status === 409 ? 'This visit already has an invoice — no second one was created.' : 'The invoice was not created.';
  return `<div><b>${esc(head)}</b> <span>${esc(detail)}</span></div>
    <button type="button" class="btn btn--sm btn--ghost" data-action="dismiss-invoice-alert">Dismiss</button>`;
}
