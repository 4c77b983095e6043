// Doctor: my queue, call next, the consultation (notes, prescription,
// invoice), close the visit — live.
import {
  signIn, shell, live, perform, apiGet, listAll, Records, esc, chip, time, longDate, minutes,
  initials, age, money, frame, today, toast,
} from './app.js';

const { claims } = await signIn({ roles: ['doctor', 'admin', 'coordinator', 'platform'] });
const header = shell({ title: 'Doctor', subtitle: 'Consultations', claims, extra: '<select class="doctor-pick" aria-label="Doctor" style="width:auto"></select>' });
const app = document.getElementById('app');
const pick = header.querySelector('.doctor-pick');

const EMPTY_ICON = `<svg width="64" height="64" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="1.5"><path d="M4.8 2.3A.3.3 0 1 0 5 2H4a2 2 0 0 0-2 2v5a6 6 0 0 0 6 6a6 6 0 0 0 6-6V4a2 2 0 0 0-2-2h-1a.2.2 0 1 0 .3.3"/><path d="M8 15v1a6 6 0 0 0 6 6a6 6 0 0 0 6-6v-4"/><circle cx="20" cy="10" r="2"/></svg>`;

const doctors = new Records('doctors');
const patients = new Records('patients');
const queue = new Records('queue');
const appts = new Records('appointments');
const visits = new Records('visits');
const rxs = new Records('prescriptions');
const invoices = new Records('invoices');
let board = null;
let day = '';
let me = '';

async function load() {
  const b0 = await apiGet('/api/v1/queue/board');
  day = today(b0.boards);
  const d = await listAll('/api/v1/doctors');
  doctors.reset(d.items);
  // The token's subject names the doctor when it is a doctor id; otherwise
  // the doctor chosen on this device.
  me = doctors.get(claims.sub) ? claims.sub : (localStorage.getItem('clinicpulse.doctor') || '');
  if (!doctors.get(me)) me = d.items.sort((a, b) => a.name.localeCompare(b.name))[0]?.id || '';
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
    .map((x) => `<option value="${esc(x.id)}" ${x.id === me ? 'selected' : ''}>${esc(x.name)}</option>`).join('');
  pick.disabled = !!doctors.get(claims.sub);
  return cursor;
}

pick.addEventListener('change', () => { localStorage.setItem('clinicpulse.doctor', pick.value); location.reload(); });

const since = await load();
app.innerHTML = `
  <div class="toolbar">
    <div><h2 data-title></h2><p class="muted small">${esc(longDate(day))}</p></div>
    <div class="spacer"></div>
    <div class="stats" data-stats></div>
    <button class="btn btn--primary btn--lg" data-action="call-next">Call next patient</button>
  </div>
  <div class="layout" style="grid-template-columns: 400px minmax(0, 1fr)">
    <section class="card" aria-label="My queue">
      <div class="card__head"><h2>My queue</h2><span class="count" data-count></span></div>
      <ul class="list" data-queue></ul>
    </section>
    <section class="card" data-consult aria-label="Consultation"></section>
  </div>`;
app.removeAttribute('aria-busy');
const $ = (sel) => app.querySelector(sel);
let shownVisit = null;

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
  $('[data-title]').textContent = d ? `${d.name} · Room ${d.room}` : 'No doctor';
  const list = ordered();
  const done = queue.all().filter((q) => q.day === day && q.status === 'completed').length;
  $('[data-stats]').innerHTML = `
    <div class="stat"><b>${board?.waiting_count ?? 0}</b><span>Waiting</span></div>
    <div class="stat"><b>${minutes(board?.estimated_wait_minutes || 0)}</b><span>Queue length</span></div>
    <div class="stat"><b>${done}</b><span>Seen today</span></div>`;
  $('[data-count]').textContent = String(list.length);
  $('[data-action="call-next"]').disabled = !list.some((q) => q.status === 'waiting');
  $('[data-queue]').innerHTML = list.map(drawEntry).join('') || '<li class="empty">Your queue is empty.</li>';
  const v = openVisit();
  if ((v?.id || null) !== shownVisit || !v) drawConsult(v, list);
  else drawVisitLists(v);
}

function drawEntry(q) {
  const p = patients.get(q.patient_id);
  const pos = (board?.waiting || []).indexOf(q.token) + 1;
  const sub = q.status === 'waiting' ? `#${pos || q.position} in line` : q.status === 'called' ? 'Called — on the way to you' : 'With you now';
  let actions = '';
  if (q.status === 'called' && !openVisit()) actions = `<button class="btn btn--sm btn--primary" data-action="start" data-id="${q.id}">Start</button>`;
  if (q.status === 'called') actions += `<button class="btn btn--sm btn--danger" data-action="no-show" data-id="${q.id}">No-show</button>`;
  return `<li class="item ${q.status !== 'waiting' ? 'item--active' : ''}" data-entry-id="${q.id}" data-token="${q.token}" data-status="${q.status}">
    <span class="token token--${q.status}">${q.token}</span>
    <div class="item__main"><div class="item__title">${esc(p?.name || 'Patient')}</div>
      <div class="item__sub">${q.priority !== 'normal' ? `${chip(q.priority)} ` : ''}${esc(sub)}${p ? ` · ${esc(age(p.date_of_birth))}` : ''}</div></div>
    <div class="item__actions">${actions}</div></li>`;
}


function drawConsult(v, list) {
  const el = $('[data-consult]');
  shownVisit = v?.id || null;
  if (!v) {
    const called = list.find((q) => q.status === 'called');
    const p = called && patients.get(called.patient_id);
    el.innerHTML = `<div class="empty-state">${EMPTY_ICON}
      ${called ? `<h2>#${called.token} ${esc(p?.name || 'Patient')} is on the way</h2>
        <p>Start the consultation when they arrive.</p>
        <p style="margin-top:1rem"><button class="btn btn--primary btn--lg" data-action="start" data-id="${called.id}">Start consultation</button></p>`
      : `<h2>No patient with you</h2><p>Call the next patient when you are ready.</p>`}</div>`;
    return;
  }
  const p = patients.get(v.patient_id) || {};
  const entry = queue.get(v.queue_entry_id);
  const appt = appts.get(v.appointment_id);
  el.innerHTML = `
    <div class="consult stack">
      <div class="patient-head">
        <span class="avatar">${esc(initials(p.name))}</span>
        <div style="flex:1"><h2 data-patient-name>${esc(p.name || 'Patient')}</h2>
          <div class="muted">${entry ? `Token ${entry.token} · ` : ''}started ${esc(time(v.created_at))}</div></div>
        ${chip('in_progress')}
      </div>
      <div class="facts">
        <div><small>Age</small><b>${esc(age(p.date_of_birth)) || '—'}</b></div>
        <div><small>Date of birth</small><b>${esc(p.date_of_birth || '—')}</b></div>
        <div><small>MRN</small><b>${esc(p.mrn || '—')}</b></div>
        <div><small>Reason</small><b>${esc(appt?.reason || 'Walk-in')}</b></div>
      </div>
      <label class="field"><span>Consultation notes</span>
        <textarea name="notes" rows="4" placeholder="History, findings, plan…">${esc(v.notes || '')}</textarea></label>
      <div class="row"><span class="spacer"></span><button class="btn btn--sm" data-action="save-notes">Save notes</button></div>

      <h3 class="section-title">Prescription</h3>
      <ul class="list card" data-rx-list></ul>
      <form class="lines" data-rx-form>
        <div class="lines" data-rx-lines></div>
        <div class="row"><button type="button" class="btn btn--sm btn--ghost" data-action="rx-line">+ Add medicine</button>
          <span class="spacer"></span><button class="btn btn--sm btn--primary" type="submit">Save prescription</button></div>
      </form>

      <h3 class="section-title">Invoice</h3>
      <ul class="list card" data-inv-list></ul>
      <form class="lines" data-inv-form>
        <div class="lines" data-inv-lines></div>
        <div class="row"><button type="button" class="btn btn--sm btn--ghost" data-action="inv-line">+ Add line</button>
          <span class="spacer"></span>
          <select name="currency" style="width:auto"><option>USD</option><option>EUR</option><option>GBP</option></select>
          <span class="total" data-inv-total></span>
          <button class="btn btn--sm btn--primary" type="submit">Create invoice</button></div>
      </form>
    </div>
    <div class="card__foot"><span class="muted small" style="margin-right:auto">Closing completes the visit, the queue entry and the appointment.</span>
      <button class="btn btn--primary" data-action="close-visit">Close visit</button></div>`;
  addRxLine(); addInvLine({ description: 'Consultation', quantity: 1, unit_price: 60 });
  drawVisitLists(v);
}

function drawVisitLists(v) {
  const rl = $('[data-rx-list]');
  const il = $('[data-inv-list]');
  if (!rl || !il) return;
  const rx = rxs.all().filter((r) => r.visit_id === v.id);
  rl.innerHTML = rx.flatMap((r) => r.items.map((i) => `<li class="item"><div class="item__main">
      <div class="item__title">${esc(i.drug)} ${esc(i.dose)}</div>
      <div class="item__sub">${esc([i.route, i.frequency, i.duration].filter(Boolean).join(' · '))}</div></div>${chip('issued')}</li>`)).join('')
    || '<li class="empty">No medicines prescribed yet.</li>';
  const inv = invoices.all().filter((i) => i.visit_id === v.id);
  il.innerHTML = inv.map((i) => `<li class="item"><div class="item__main">
      <div class="item__title">${esc(i.lines.map((l) => l.description).join(', '))}</div>
      <div class="item__sub">${i.lines.length} line${i.lines.length === 1 ? '' : 's'}</div></div>
      <b>${esc(money(i.total, i.currency))}</b> ${chip(i.status)}</li>`).join('')
    || '<li class="empty">No invoice yet.</li>';
}

function addRxLine() {
  const box = $('[data-rx-lines]');
  const row = document.createElement('div');
  row.className = 'line line--rx';
  row.innerHTML = `<input name="drug" placeholder="Medicine" required><input name="dose" placeholder="Dose" required>
    <select name="route"><option>oral</option><option>topical</option><option>inhaled</option><option>IM</option><option>IV</option></select>
    <input name="frequency" placeholder="Frequency" value="twice daily"><input name="duration" placeholder="Duration" value="7 days">
    <button type="button" class="btn btn--sm btn--ghost" data-action="remove-line" title="Remove">✕</button>`;
  box.append(row);
}

function addInvLine(l = {}) {
  const box = $('[data-inv-lines]');
  const row = document.createElement('div');
  row.className = 'line line--inv';
  row.innerHTML = `<input name="description" placeholder="Description" required value="${esc(l.description || '')}">
    <input name="quantity" type="number" min="1" value="${l.quantity || 1}" aria-label="Quantity">
    <input name="unit_price" type="number" min="0" step="0.01" value="${l.unit_price ?? ''}" placeholder="Unit price" aria-label="Unit price">
    <button type="button" class="btn btn--sm btn--ghost" data-action="remove-line" title="Remove">✕</button>`;
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
  const v = openVisit();
  switch (btn.dataset.action) {
    case 'call-next': {
      const next = ordered().find((q) => q.status === 'waiting');
      if (!next) return;
      await perform(conn, 'PATCH', `/api/v1/queue/${next.id}`, { status: 'called' }, {
        ifMatch: next.version, label: `Call #${next.token}`, optimistic: queue.optimisticStatus(next.id, 'called', render),
      });
      break;
    }
    case 'no-show': {
      const q = queue.get(btn.dataset.id);
      await perform(conn, 'PATCH', `/api/v1/queue/${q.id}`, { status: 'no_show' }, {
        ifMatch: q.version, label: `No-show #${q.token}`, optimistic: queue.optimisticStatus(q.id, 'no_show', render),
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
  if (!v) return;
  if (e.target.matches('[data-rx-form]')) {
    const items = [...app.querySelectorAll('.line--rx')].map((r) => Object.fromEntries(
      ['drug', 'dose', 'route', 'frequency', 'duration'].map((k) => [k, r.querySelector(`[name=${k}]`).value.trim()])))
      .filter((i) => i.drug);
    if (!items.length) return;
    const r = await perform(conn, 'POST', '/api/v1/prescriptions', { visit_id: v.id, items }, { label: 'Save prescription' });
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
    const r = await perform(conn, 'POST', '/api/v1/invoices', { visit_id: v.id, currency, lines }, { label: 'Create invoice' });
    if (r.ok && !r.queued) {
      invoices.set(r.data);
      drawVisitLists(v);
      toast(`Invoice created: ${money(r.data.total, r.data.currency)}.`, 'ok', 2500);
    } else if (!r.ok) toast(`Invoice not created: ${r.problem?.detail || r.status}`, 'error');
  }
});
