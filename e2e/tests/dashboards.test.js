// The dashboards in a real browser: a change made at the front desk reaches
// the doctor page and the waiting-room display within a second; the display
// never shows a patient's name or other personal data; a screenshot of each
// dashboard is saved under e2e/artifacts/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Server, seed, browser, open, badge, shot, need, CHROMIUM, sleep } from '../lib.js';

let server; let data; let ctx;

before(async () => {
  server = await new Server().start();
  data = await seed(server);
});

after(async () => {
  await ctx?.close();
  await server?.cleanup();
});

// appearsWhen resolves (in the page) with Date.now() when pred(arg) holds,
// checked on every DOM mutation.
function appearsWhen(page, pred, arg) {
  return page.evaluate(([src, a]) => new Promise((resolve) => {
    const ok = new Function('a', `return (${src})(a)`);
    if (ok(a)) return resolve(Date.now());
    const mo = new MutationObserver(() => {
      if (ok(a)) { mo.disconnect(); resolve(Date.now()); }
    });
    mo.observe(document.documentElement, { subtree: true, childList: true, attributes: true, characterData: true });
  }), [pred.toString(), arg]);
}

// appearsAt resolves (in the page) with Date.now() when selector matches.
function appearsAt(page, selector) {
  return page.evaluate((sel) => new Promise((resolve) => {
    if (document.querySelector(sel)) return resolve(Date.now());
    const mo = new MutationObserver(() => {
      if (document.querySelector(sel)) { mo.disconnect(); resolve(Date.now()); }
    });
    mo.observe(document.documentElement, { subtree: true, childList: true, attributes: true, characterData: true });
  }), selector);
}

test('a front-desk change reaches the doctor page and the display within 1 s; the display shows no personal data', async (t) => {
  if (!need(t, CHROMIUM, 'chromium')) return;
  ctx = await browser();
  const doctor = data.doctors[0];
  const desk = await open(ctx, server.url, 'frontdesk', server.token('coordinator'));
  const doc = await open(ctx, server.url, 'doctor', server.token('doctor', doctor.id));
  const display = await open(ctx, server.url, 'display', server.token('display'));
  await Promise.all([badge(desk, 'live'), badge(doc, 'live'), badge(display, 'live')]);

  const board = (await server.api('GET', '/api/v1/queue/board')).boards.find((b) => b.doctor_id === doctor.id);
  const token = board.waiting[0];
  const entry = (await server.api('GET', `/api/v1/queue?doctor_id=${doctor.id}&date=${board.day}`)).items.find((q) => q.token === token);

  const results = [];
  for (const round of [0, 1, 2]) {
    const b = (await server.api('GET', '/api/v1/queue/board')).boards.find((x) => x.doctor_id === doctor.id);
    const next = b.waiting[0];
    const e = (await server.api('GET', `/api/v1/queue?doctor_id=${doctor.id}&date=${b.day}`)).items.find((q) => q.token === next);
    // Watch both pages before acting; each records when the change shows.
    const onDoctor = appearsAt(doc, `[data-entry-id="${e.id}"][data-status="called"]`);
    const onDisplay = appearsWhen(display, ([id, tk]) => document.querySelector(`[data-board="${id}"] [data-now-serving]`)?.textContent === String(tk), [doctor.id, next]);
    const clickedAt = await desk.evaluate((id) => {
      const btn = document.querySelector(`[data-doctor-id="${id}"] [data-action="call-next"]`);
      const at = Date.now();
      btn.click();
      return at;
    }, doctor.id);
    const [d, s] = await Promise.all([onDoctor, onDisplay]);
    results.push({ round, token: next, doctorMs: d - clickedAt, displayMs: s - clickedAt });
    if (round < 2) {
      // Finish this patient so that the next call is a new "now serving".
      const v = await server.api('POST', '/api/v1/visits', { queue_entry_id: e.id });
      await server.api('PATCH', `/api/v1/visits/${v.id}`, { status: 'closed' });
      await sleep(300);
    }
  }
  console.log('# front desk → doctor / display latency (ms):', JSON.stringify(results));
  for (const r of results) {
    assert.ok(r.doctorMs < 1000, `doctor page took ${r.doctorMs} ms`);
    assert.ok(r.displayMs < 1000, `display took ${r.displayMs} ms`);
  }
  assert.equal(entry.token, token);

  // The display: large tokens only — no patient names, MRNs, phones or birth dates.
  const html = await display.evaluate(() => document.documentElement.outerHTML);
  const text = await display.evaluate(() => document.body.innerText);
  assert.match(text, /Dr\. Amara Okafor/); // it did render
  for (const p of data.patients) {
    for (const secret of [p.name, p.name.split(' ')[1], p.mrn, p.phone, p.date_of_birth, p.id]) {
      assert.ok(!html.includes(secret) && !text.includes(secret), `display shows ${JSON.stringify(secret)}`);
    }
  }
  // And it never asked for personal data (a display token could not read it anyway).
  const names = await display.evaluate(() => performance.getEntriesByType('resource').map((e) => new URL(e.name).pathname));
  assert.ok(!names.some((n) => /\/api\/v1\/(patients|appointments|visits|prescriptions|invoices)/.test(n)), names.join(' '));

  await shot(desk, 'frontdesk');
  await shot(doc, 'doctor-queue');
  await display.setViewportSize({ width: 1920, height: 1080 });
  await sleep(300);
  await shot(display, 'display');
  // Each page with its own token holds its own connection: stay under the
  // browser's six connections per host.
  await Promise.all([desk.close(), doc.close(), display.close()]);
});

test('screenshots of the consultation, patient, operations and home pages', async (t) => {
  if (!need(t, CHROMIUM, 'chromium')) return;
  ctx ||= await browser();
  const doctor = data.doctors[1];
  const doc = await open(ctx, server.url, 'doctor', server.token('doctor', doctor.id));
  await badge(doc, 'live');
  // Call the next patient and start the consultation through the page.
  await doc.click('[data-action="call-next"]');
  await doc.locator('[data-consult] [data-action="start"]').click();
  await doc.locator('[data-patient-name]').waitFor();
  await doc.fill('[name=notes]', 'Mild fever for two days. Chest clear. Advised fluids and rest.');
  await doc.fill('.line--rx [name=drug]', 'Paracetamol');
  await doc.fill('.line--rx [name=dose]', '500 mg');
  await doc.click('[data-rx-form] button[type=submit]');
  await doc.locator('[data-rx-list] .item__title', { hasText: 'Paracetamol' }).waitFor();
  await doc.click('[data-inv-form] button[type=submit]');
  await doc.locator('[data-inv-list] .item__title', { hasText: 'Consultation' }).waitFor();
  await shot(doc, 'doctor-consultation');
  await doc.setViewportSize({ width: 390, height: 844 });
  await shot(doc, 'doctor-phone');
  await doc.setViewportSize({ width: 1440, height: 900 });
  const visit = (await server.api('GET', `/api/v1/visits?doctor_id=${doctor.id}&status=open`)).items[0];
  assert.ok(visit, 'an open visit');
  const inv = (await server.api('GET', `/api/v1/invoices?visit_id=${visit.id}`)).items;
  assert.equal(inv.length, 1);
  assert.equal(inv[0].total, 6000);
  await doc.click('[data-action="close-visit"]');
  await doc.locator('[data-consult] .empty-state').waitFor();
  // The page closes the visit optimistically: wait for the server's answer.
  let closed;
  for (let i = 0; i < 50 && closed !== 'closed'; i++) {
    closed = (await server.api('GET', `/api/v1/visits/${visit.id}`)).status;
    if (closed !== 'closed') await sleep(100);
  }
  assert.equal(closed, 'closed');
  await doc.close();

  // A patient second in line for Dr. Raman, on a phone.
  const raman = (await server.api('GET', '/api/v1/queue/board')).boards.find((b) => b.doctor_id === data.doctors[2].id);
  const waiting = (await server.api('GET', `/api/v1/queue?doctor_id=${raman.doctor_id}&date=${raman.day}&status=waiting`)).items;
  const me = waiting.find((q) => q.token === raman.waiting[1]) || waiting[0];
  const phone = await open(ctx, server.url, 'patient', server.token('patient', me.patient_id));
  await phone.setViewportSize({ width: 390, height: 844 });
  await badge(phone, 'live');
  await phone.locator('[data-token]').waitFor();
  await shot(phone, 'patient');
  // Called: the page says so, live.
  await server.api('PATCH', `/api/v1/queue/${me.id}`, { status: 'called' });
  await phone.locator('[data-hero][data-status="called"]').waitFor({ timeout: 2000 });
  await shot(phone, 'patient-called');
  await phone.close();

  const ops = await open(ctx, server.url, 'ops', server.token('admin'));
  await ops.locator('[data-stats] .placeholder, [data-stats] .kpis').first().waitFor();
  await badge(ops, 'live');
  await shot(ops, 'ops');
  await ops.close();
  const home = await ctx.newPage();
  await home.goto(`${server.url}/static/index.html`);
  await shot(home, 'home');
});
