// Front desk: today's queue per doctor and the day's appointments, live.
import {
  signIn, shell, live, perform, apiGet, listAll, Records, esc, chip, time, longDate, minutes,
  initials, frame, today, toast,
} from './app.js';

const { claims } = await signIn({ roles: ['admin', 'coordinator', 'doctor', 'platform'] });
shell({ title: 'Front desk', subtitle: 'Queue & arrivals', claims });
const app = document.getElementById('app');

const doctors = new Records('doctors');
const patients = new Records('patients');
const queue = new Records('queue');
const appts = new Records('appointments');
let boards = new Map(); // doctor id → board
let boardOrder = [];
let day = '';
const pending = new Map(); // Idempotency-Key → placeholder of a queued walk-in

async function load() {
  const b0 = await apiGet('/api/v1/queue/board');
  day = today(b0.boards);
  const [d, p, q, a] = await Promise.all([
    listAll('/api/v1/doctors'), listAll('/api/v1/patients'),
    listAll(`/api/v1/queue?date=${day}`), listAll(`/api/v1/appointments?date=${day}`),
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

const render = frame(draw);
const since = await load();
draw();
app.removeAttribute('aria-busy');

const conn = live({
  since,
  onEvent(ev) {
    if (ev.type === 'queue.board') {
      if (ev.data.day !== day) { day = ev.data.day; reload(); return; }
      if (ev.data.archived) { boards.delete(ev.id); boardOrder = boardOrder.filter((x) => x !== ev.id); render(); return; }
      if (!boards.has(ev.id)) boardOrder.push(ev.id);
      boards.set(ev.id, ev.data);
    } else {
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
  await conn.onReset();
}

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

function draw() {
  const active = queue.all().filter((q) => q.day === day);
  const waiting = active.filter((q) => q.status === 'waiting').length;
  const inConsult = active.filter((q) => q.status === 'in_progress' || q.status === 'called').length;
  const seen = active.filter((q) => q.status === 'completed').length;
  const dayAppts = appts.all().sort((x, y) => x.starts_at.localeCompare(y.starts_at));
  const toArrive = dayAppts.filter((a) => a.status === 'scheduled').length;
  app.innerHTML = `
    <div class="toolbar">
      <div><h2>${esc(longDate(day))}</h2><p class="muted small">Live queue for every doctor on duty</p></div>
      <div class="spacer"></div>
      <div class="stats">
        <div class="stat"><b data-stat="waiting">${waiting}</b><span>Waiting</span></div>
        <div class="stat"><b>${inConsult}</b><span>With doctor</span></div>
        <div class="stat"><b>${seen}</b><span>Seen today</span></div>
        <div class="stat"><b>${toArrive}</b><span>Still to arrive</span></div>
      </div>
      <button class="btn btn--primary btn--lg" data-action="walkin">+ Add walk-in</button>
    </div>
    <div class="layout">
      <section class="grid" aria-label="Queues">${boardOrder.map(drawDoctor).join('')}</section>
      <aside class="card" aria-label="Appointments">
        <div class="card__head"><h2>Today's appointments</h2><span class="count">${dayAppts.length}</span></div>
        <ul class="list">${dayAppts.map(drawAppt).join('') || '<li class="empty">No appointments today.</li>'}</ul>
      </aside>
    </div>`;
}

function drawDoctor(id) {
  const b = boards.get(id);
  const d = doctors.get(id) || { name: b?.doctor_name || 'Doctor', room: b?.room, specialty: '' };
  const list = entriesOf(id);
  const open = list.filter((q) => ['in_progress', 'called', 'waiting'].includes(q.status));
  const done = list.length - open.length;
  const placeholders = [...pending.values()].filter((p) => p.doctor_id === id);
  const next = list.find((q) => q.status === 'waiting');
  return `
    <article class="card" data-doctor-id="${esc(id)}">
      <div class="card__head">
        <span class="avatar">${esc(initials(d.name))}</span>
        <div style="flex:1;min-width:0"><div class="doc-name">${esc(d.name)}</div>
          <div class="doc-meta">${esc(d.specialty || '')}${d.specialty ? ' · ' : ''}Room ${esc(d.room || '—')}</div></div>
        <div class="serving"><small>Serving</small><b data-now-serving>${b?.now_serving ?? '—'}</b></div>
      </div>
      <ul class="list">
        ${open.map(drawEntry).join('')}
        ${placeholders.map((p) => `<li class="item item--pending" data-pending="${esc(p.patient_id)}">
            <span class="token">…</span><div class="item__main"><div class="item__title">${esc(p.name)}</div>
            <div class="item__sub">Waiting to sync — added offline</div></div></li>`).join('')}
        ${open.length || placeholders.length ? '' : '<li class="empty">Nobody waiting.</li>'}
      </ul>
      <div class="card__foot">
        <span class="muted small" style="margin-right:auto">${b ? `${b.waiting_count} waiting · ${minutes(b.estimated_wait_minutes)}` : ''}${done ? ` · ${done} done` : ''}</span>
        <button class="btn btn--primary btn--sm" data-action="call-next" data-doctor="${esc(id)}" ${next ? '' : 'disabled'}>Call next</button>
      </div>
    </article>`;
}

function drawEntry(q) {
  const p = patients.get(q.patient_id);
  const pos = q.status === 'waiting' ? positionOf(q) : 0;
  const sub = q.status === 'waiting' ? `#${pos} in line · ${minutes(waitOf(q, pos))}`
    : q.status === 'called' ? 'Called — on the way' : 'In consultation';
  const actions = q.status === 'waiting'
    ? `<button class="btn btn--sm" data-action="call" data-id="${q.id}">Call</button>
       <button class="btn btn--sm btn--ghost" data-action="cancel" data-id="${q.id}" title="Cancel">✕</button>`
    : q.status === 'called' ? `<button class="btn btn--sm btn--danger" data-action="no-show" data-id="${q.id}">No-show</button>` : '';
  return `<li class="item ${q.status !== 'waiting' ? 'item--active' : ''}" data-entry-id="${q.id}" data-token="${q.token}" data-status="${q.status}" data-patient="${esc(q.patient_id)}">
    <span class="token token--${q.status}">${q.token}</span>
    <div class="item__main"><div class="item__title">${esc(p?.name || 'Patient')}</div>
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

function drawAppt(a) {
  const p = patients.get(a.patient_id);
  const d = doctors.get(a.doctor_id);
  return `<li class="item ${['completed', 'cancelled', 'no_show'].includes(a.status) ? 'item--done' : ''}" data-appt-id="${a.id}" data-status="${a.status}">
    <span class="time">${esc(time(a.starts_at))}</span>
    <div class="item__main"><div class="item__title">${esc(p?.name || 'Patient')}</div>
      <div class="item__sub">${esc(d?.name || '')}${a.reason ? ` · ${esc(a.reason)}` : ''}</div></div>
    ${a.status === 'scheduled' ? `<button class="btn btn--sm" data-action="check-in" data-id="${a.id}">Check in</button>` : chip(a.status)}
  </li>`;
}

// ------------------------------------------------------------------ actions

async function setQueueStatus(id, status, label) {
  const q = queue.get(id);
  if (!q) return;
  const p = patients.get(q.patient_id);
  await perform(conn, 'PATCH', `/api/v1/queue/${id}`, { status }, {
    ifMatch: q.version, label: `${label} #${q.token} ${p?.name || ''}`.trim(), optimistic: queue.optimisticStatus(id, status, render),
  });
}

app.addEventListener('click', async (e) => {
  const btn = e.target.closest('[data-action]');
  if (!btn) return;
  const id = btn.dataset.id;
  switch (btn.dataset.action) {
    case 'walkin': openWalkin(); break;
    case 'call': await setQueueStatus(id, 'called', 'Call'); break;
    case 'cancel': await setQueueStatus(id, 'cancelled', 'Cancel'); break;
    case 'no-show': await setQueueStatus(id, 'no_show', 'No-show'); break;
    case 'call-next': {
      const next = entriesOf(btn.dataset.doctor).find((q) => q.status === 'waiting');
      if (next) await setQueueStatus(next.id, 'called', 'Call');
      break;
    }
    case 'check-in': {
      const a = appts.get(id);
      const p = patients.get(a?.patient_id);
      await perform(conn, 'PATCH', `/api/v1/appointments/${id}`, { status: 'checked_in' }, {
        ifMatch: a.version, label: `Check in ${p?.name || ''}`.trim(), optimistic: appts.optimisticStatus(id, 'checked_in', render),
      });
      break;
    }
  }
});

// ------------------------------------------------------------------ walk-in

const dlg = document.getElementById('walkin');
const form = document.getElementById('walkin-form');
form.addEventListener('change', (e) => {
  if (e.target.name !== 'who') return;
  for (const el of form.querySelectorAll('[data-who]')) el.classList.toggle('hidden', el.dataset.who !== e.target.value);
});

function patientLabel(p) { return `${p.name} · ${p.mrn}`; }

function openWalkin() {
  form.reset();
  form.querySelector('[data-error]').textContent = '';
  for (const el of form.querySelectorAll('[data-who]')) el.classList.toggle('hidden', el.dataset.who !== 'existing');
  form.querySelector('#patient-list').innerHTML = patients.all()
    .sort((a, b) => a.name.localeCompare(b.name)).map((p) => `<option value="${esc(patientLabel(p))}">`).join('');
  form.doctor.innerHTML = boardOrder.map((id) => {
    const b = boards.get(id);
    return `<option value="${esc(id)}">${esc(b?.doctor_name || doctors.get(id)?.name)} — ${b?.waiting_count ?? 0} waiting</option>`;
  }).join('');
  dlg.showModal();
  form.patient.focus();
}

form.addEventListener('submit', async (e) => {
  if (e.submitter?.value !== 'add') return;
  e.preventDefault();
  const err = form.querySelector('[data-error]');
  const who = form.who.value;
  let patient;
  let name;
  if (who === 'existing') {
    patient = patients.all().find((p) => patientLabel(p) === form.patient.value.trim()
      || p.name.toLowerCase() === form.patient.value.trim().toLowerCase());
    if (!patient) { err.textContent = 'Choose a patient from the list.'; return; }
    name = patient.name;
  } else {
    if (!form.elements.namedItem('name').value.trim() || !form.dob.value) { err.textContent = 'Name and date of birth are needed.'; return; }
    const r = await conn.send('POST', '/api/v1/patients', {
      name: form.elements.namedItem('name').value.trim(), date_of_birth: form.dob.value, phone: form.phone.value.trim(),
      mrn: `WI-${Date.now().toString(36).toUpperCase()}`,
    }, { label: `Register ${form.elements.namedItem('name').value.trim()}` });
    if (r.queued) { err.textContent = 'New patients can be registered only while online.'; return; }
    if (!r.ok) { err.textContent = r.problem?.detail || 'Could not register the patient.'; return; }
    patient = r.data;
    patients.set(patient);
    name = patient.name;
  }
  const doctorId = form.doctor.value;
  dlg.close();
  const r = await perform(conn, 'POST', '/api/v1/queue', {
    patient_id: patient.id, doctor_id: doctorId, priority: form.priority.value,
  }, { label: `Walk-in ${name}` });
  if (r.queued) {
    pending.set(r.key, { patient_id: patient.id, doctor_id: doctorId, name });
    render();
  } else if (r.ok) {
    queue.set(r.data);
    render();
    toast(`${name} added — token ${r.data.token}.`, 'ok');
  }
});
