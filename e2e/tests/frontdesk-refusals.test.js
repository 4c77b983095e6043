// After any refusal the front desk shows the newest version it knows from
// the server — never the snapshot from before the click (issue 13, item 2).
// One test per kind of refusal the front desk can meet. A colleague's change
// is made through the API while the page's own request is held on its way
// (page.route, then the request goes on to the real server), so the server
// really refuses it; the page's rows are recorded on every DOM change to show
// that the old state never comes back after the answer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Server, seed, browser, open, badge, need, CHROMIUM, sleep } from '../lib.js';
import { until, press, watchRow, watchWrites, addPatients } from './frontdesk-lib.js';

let server; let data; let ctx; let desk; let extra;
const SLOT = 20 * 60000;
let first; // the seed's first slot (ms); doctor A is free at slots 1, 2, 4, 5, 7, 8

before(async () => {
  server = await new Server().start();
  data = await seed(server);
  first = Date.parse(data.appts[0].starts_at);
  extra = await addPatients(server, 12, 'Refusal');
});

after(async () => {
  await ctx?.close();
  await server?.cleanup();
});

async function page() {
  if (desk && !desk.isClosed()) return desk;
  ctx ||= await browser({ viewport: { width: 1440, height: 1000 } });
  desk = await open(ctx, server.url, 'frontdesk', server.token('coordinator', 'desk-r'));
  await badge(desk, 'live');
  await watchWrites(desk);
  return desk;
}

/**
 * hold makes the page's next `method` request to `pathname` wait until
 * meanwhile() (the colleague's change) is done and the page has had time
 * to receive its events; then the request goes on to the server.
 */
async function hold(p, method, pathname, meanwhile, settle = 600) {
  let done;
  const passed = new Promise((r) => { done = r; });
  const match = (u) => u.pathname === pathname;
  await p.route(match, async (route) => {
    if (route.request().method() !== method) return route.continue();
    await meanwhile();
    await sleep(settle);
    await route.continue();
    done();
  });
  return passed.then(() => p.unroute(match));
}

/** writeOf waits for the page's write whose label matches and answers it. */
async function writeOf(p, label) {
  return until(`the write “${label}” to settle`, () => p.evaluate((l) => globalThis.__writes.find((w) => w.label.includes(l)), label));
}

/** statesAfter answers the row states recorded at or after ms. */
async function statesAfter(p, name, ms) {
  const log = await p.evaluate((n) => globalThis.__rows[n], name);
  const last = log.filter(([at]) => at <= ms).pop();
  return [last, ...log.filter(([at]) => at > ms)].filter(Boolean).map(([, s]) => s);
}

async function book(patient, doctor, slot) {
  const start = new Date(first + slot * SLOT);
  return server.api('POST', '/api/v1/appointments', {
    patient_id: patient.id, doctor_id: doctor.id, starts_at: start.toISOString(), ends_at: new Date(start.getTime() + SLOT).toISOString(), reason: 'Refusal test',
  });
}

test('Call while a colleague removes the entry (events arrive during the request): 412, and the entry stays gone', async (t) => {
  if (!need(t, CHROMIUM, 'chromium')) return;
  const p = await page();
  const e = await server.api('POST', '/api/v1/queue', { patient_id: extra[0].id, doctor_id: data.doctors[1].id });
  const row = `[data-entry-id="${e.id}"]`;
  await p.locator(row).waitFor();
  await watchRow(p, 'call', row);
  const held = hold(p, 'PATCH', `/api/v1/queue/${e.id}`, () => server.api('PATCH', `/api/v1/queue/${e.id}`, { status: 'cancelled' }));
  await press(p, p.locator(`${row} [data-action="call"]`));
  await held;
  const w = await writeOf(p, `#${e.token_label}`);
  assert.equal(w.status, 412);
  await sleep(500);
  const states = await statesAfter(p, 'call', w.at);
  assert.deepEqual(states.filter((s) => s === 'waiting' || s === 'called'), [], `after the refusal the row showed ${states}`);
  assert.equal(await p.locator(row).count(), 0, 'a cancelled entry leaves the queue');
  assert.equal((await server.api('GET', `/api/v1/queue/${e.id}`)).status, 'cancelled');
});

test('Call refused while the page missed the colleague\'s event: the page reads the entry again', async (t) => {
  if (!need(t, CHROMIUM, 'chromium')) return;
  const p = await page();
  const e = await server.api('POST', '/api/v1/queue', { patient_id: extra[1].id, doctor_id: data.doctors[2].id });
  const row = `[data-entry-id="${e.id}"]`;
  await p.locator(row).waitFor();
  // The page stops applying events (a stream lagging behind), then a
  // colleague removes the entry: only a read can tell the page.
  await p.evaluate(() => { globalThis.__onEvent = globalThis.clinicpulse.conn.onEvent; globalThis.clinicpulse.conn.onEvent = () => {}; });
  try {
    await server.api('PATCH', `/api/v1/queue/${e.id}`, { status: 'cancelled' });
    await sleep(300);
    assert.equal(await p.locator(`${row}[data-status="waiting"]`).count(), 1, 'the page did not hear of the change');
    const reads = [];
    p.on('request', (r) => { if (r.method() === 'GET' && new URL(r.url()).pathname === `/api/v1/queue/${e.id}`) reads.push(Date.now()); });
    await watchRow(p, 'missed', row);
    await press(p, p.locator(`${row} [data-action="call"]`));
    const w = await writeOf(p, `#${e.token_label}`);
    assert.equal(w.status, 412);
    await until('the entry to leave the page', async () => (await p.locator(row).count()) === 0, 3000);
    assert.equal(reads.length, 1, 'the page read the entry again once');
    const states = await statesAfter(p, 'missed', w.at);
    assert.ok(!states.slice(1).includes('waiting'), `after the refusal the row went back to waiting: ${states}`);
  } finally {
    await p.evaluate(() => { globalThis.clinicpulse.conn.onEvent = globalThis.__onEvent; });
  }
});

test('Check in while a colleague cancels the appointment: 412, the row shows Cancelled', async (t) => {
  if (!need(t, CHROMIUM, 'chromium')) return;
  const p = await page();
  const a = await book(extra[2], data.doctors[0], 1);
  const row = `[data-appt-id="${a.id}"]`;
  await p.locator(`${row} [data-action="check-in"]`).waitFor();
  await watchRow(p, 'checkin', row);
  const held = hold(p, 'PATCH', `/api/v1/appointments/${a.id}`, () => server.api('PATCH', `/api/v1/appointments/${a.id}`, { status: 'cancelled' }));
  await press(p, p.locator(`${row} [data-action="check-in"]`));
  await held;
  const w = await writeOf(p, `Check in ${extra[2].name}`);
  assert.equal(w.status, 412);
  await sleep(500);
  assert.deepEqual(await statesAfter(p, 'checkin', w.at), ['cancelled']);
  assert.equal(await p.locator(`${row} [data-action="check-in"]`).count(), 0);
  assert.match(await p.locator(row).innerText(), /Cancelled/);
});

test('Call again while the doctor starts the consultation: 409, the row shows the consultation', async (t) => {
  if (!need(t, CHROMIUM, 'chromium')) return;
  const p = await page();
  const e = await server.api('POST', '/api/v1/queue', { patient_id: extra[3].id, doctor_id: data.doctors[1].id });
  await server.api('PATCH', `/api/v1/queue/${e.id}`, { status: 'called' });
  const row = `[data-entry-id="${e.id}"]`;
  await p.locator(`${row}[data-status="called"] [data-action="recall"]`).waitFor();
  await watchRow(p, 'recall', row);
  const held = hold(p, 'POST', `/api/v1/queue/${e.id}/recall`, () => server.api('POST', '/api/v1/visits', { queue_entry_id: e.id }));
  await press(p, p.locator(`${row} [data-action="recall"]`));
  await held;
  const w = await writeOf(p, `Call again #${e.token_label}`);
  assert.equal(w.status, 409);
  await sleep(500);
  assert.deepEqual(await statesAfter(p, 'recall', w.at), ['in_progress']);
  assert.equal(await p.locator(`${row} [data-action="recall"]`).count(), 0);
});

test('Cancel an appointment a colleague checked in meanwhile: 412, the row shows Checked in, not the state before the click', async (t) => {
  if (!need(t, CHROMIUM, 'chromium')) return;
  const p = await page();
  const a = await book(extra[4], data.doctors[0], 2);
  const row = `[data-appt-id="${a.id}"]`;
  await p.locator(`${row} [data-action="cancel-appt"]`).waitFor();
  await watchRow(p, 'cancel', row);
  const held = hold(p, 'PATCH', `/api/v1/appointments/${a.id}`, () => server.api('PATCH', `/api/v1/appointments/${a.id}`, { status: 'checked_in' }));
  await p.locator(`${row} [data-action="cancel-appt"]`).click();
  await p.locator('#confirm [data-confirm-yes]').click();
  await held;
  const w = await writeOf(p, `Cancel ${extra[4].name}`);
  assert.equal(w.status, 412);
  await sleep(500);
  assert.deepEqual(await statesAfter(p, 'cancel', w.at), ['checked_in']);
});

test('Check in an appointment deleted meanwhile: 404, the row goes', async (t) => {
  if (!need(t, CHROMIUM, 'chromium')) return;
  const p = await page();
  const a = await book(extra[5], data.doctors[0], 4);
  const row = `[data-appt-id="${a.id}"]`;
  await p.locator(`${row} [data-action="check-in"]`).waitFor();
  await watchRow(p, 'deleted', row);
  const held = hold(p, 'PATCH', `/api/v1/appointments/${a.id}`, () => server.api('DELETE', `/api/v1/appointments/${a.id}`));
  await press(p, p.locator(`${row} [data-action="check-in"]`));
  await held;
  const w = await writeOf(p, `Check in ${extra[5].name}`);
  assert.equal(w.status, 404);
  await sleep(500);
  assert.deepEqual(await statesAfter(p, 'deleted', w.at), [null]);
});

test('Reschedule an appointment a colleague checked in meanwhile: 412, the dialog says so and the row shows Checked in', async (t) => {
  if (!need(t, CHROMIUM, 'chromium')) return;
  const p = await page();
  const a = await book(extra[6], data.doctors[0], 5);
  const row = `[data-appt-id="${a.id}"]`;
  await p.locator(`${row} [data-action="reschedule"]`).click();
  await p.locator('#book[open]').waitFor();
  await p.locator('#book [data-slot]').first().waitFor();
  await p.locator('#book [data-slot]').last().click();
  const held = hold(p, 'PATCH', `/api/v1/appointments/${a.id}`, () => server.api('PATCH', `/api/v1/appointments/${a.id}`, { status: 'checked_in' }));
  await p.locator('#book [data-book-submit]').click();
  await held;
  const w = await writeOf(p, `Reschedule ${extra[6].name}`);
  assert.equal(w.status, 412);
  await p.locator('#book [data-error]', { hasText: 'can no longer be moved' }).waitFor({ timeout: 3000 });
  assert.ok(await p.locator('#book [data-book-submit]').isDisabled());
  await p.keyboard.press('Escape');
  assert.equal(await p.locator(row).getAttribute('data-status'), 'checked_in');
  const now = await server.api('GET', `/api/v1/appointments/${a.id}`);
  assert.equal(now.starts_at, a.starts_at, 'the refused move changed nothing');
  assert.equal(await p.locator(`${row} time`).getAttribute('datetime'), a.starts_at, 'the row shows the time the server holds');
});

test('A walk-in for a patient already in that doctor\'s queue: 409, the dialog names the entry', async (t) => {
  if (!need(t, CHROMIUM, 'chromium')) return;
  const p = await page();
  const pat = extra[7];
  const doctor = data.doctors[2];
  const e = await server.api('POST', '/api/v1/queue', { patient_id: pat.id, doctor_id: doctor.id });
  await p.locator(`[data-entry-id="${e.id}"]`).waitFor();
  await p.locator('[data-action="walkin"]').click();
  await p.fill('#walkin-form [name=patient]', pat.mrn);
  await p.locator(`#walkin-form [data-pick="${pat.id}"]`).click();
  await p.selectOption('#walkin-form [name=doctor]', doctor.id);
  await p.locator('#walkin-add').click();
  const err = p.locator('#walkin-form [data-error]');
  await until('the refusal in the dialog', async () => /already in/.test(await err.innerText()), 5000);
  assert.match(await err.innerText(), new RegExp(`token ${e.token_label}`));
  assert.ok(await p.locator('#walkin[open]').count(), 'the dialog stays open');
  await p.keyboard.press('Escape');
  const entries = (await server.api('GET', `/api/v1/queue?patient_id=${pat.id}`)).items;
  assert.equal(entries.length, 1, 'no second entry');
});

test('a notice over a button never takes its click', async (t) => {
  if (!need(t, CHROMIUM, 'chromium')) return;
  const p = await page();
  // A notice at the bottom right, over whatever is there.
  await p.evaluate(async () => (await import('/static/app.js')).toast('A notice over the page', 'ok', 5000));
  const box = await p.locator('.toast').last().boundingBox();
  const under = await p.evaluate(([x, y]) => document.elementFromPoint(x, y)?.closest('.toast') ? 'toast' : 'page', [box.x + box.width / 2, box.y + box.height / 2]);
  assert.equal(under, 'page', 'the point under a notice belongs to the page, not the notice');
});
