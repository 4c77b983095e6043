// The doctor's workspace (issue 13, item 5), in Chromium against a real
// server: notices never cover a control (1366×768, 1920×1080, a phone);
// "Create invoice" makes one invoice and the form goes away (it comes back
// empty when the invoice is voided); the API's refusal of a second invoice
// (a colleague made one while the click was on its way) is shown in the
// invoice section; the queue-length tile counts patients and the wait is a
// separate, labelled tile; another doctor's queue is read-only and says so,
// and the way back is keyboard-reachable. Screenshots:
// e2e/artifacts/doctor-*.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Server, seed, need, CHROMIUM, sleep, badge } from '../lib.js';
import { launch, dashboard, covered, screenshot } from './pages-helpers.js';

let server; let data; let browser;

before(async () => {
  server = await new Server().start();
  data = await seed(server);
});

after(async () => {
  await browser?.close();
  await server?.cleanup();
});

async function waitFor(what, fn, ms = 5000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await sleep(100);
  }
}

test('doctor: notices cover no control; one invoice per click; a second is refused visibly; the tiles say what they count', async (t) => {
  if (!need(t, CHROMIUM, 'chromium')) return;
  browser = await launch();
  const doctor = data.doctors[0];
  const page = await dashboard(browser, server.url, 'doctor', server.token('doctor', doctor.id));
  await badge(page, 'live');

  // The tiles: a count of patients, and the wait in minutes, labelled.
  const board = () => server.api('GET', '/api/v1/queue/board').then((b) => b.boards.find((x) => x.doctor_id === doctor.id));
  let b = await board();
  // Queue length: the patients in the queue (waiting, called, with the
  // doctor), as many as the list shows.
  const active = (await server.api('GET', `/api/v1/queue?doctor_id=${doctor.id}&date=${b.day}`)).items
    .filter((q) => ['waiting', 'called', 'in_progress'].includes(q.status)).length;
  await waitFor('queue tile', async () => (await page.locator('[data-stat="queue"] b').innerText()) === String(active));
  assert.equal(await page.locator('[data-queue] [data-entry-id]').count(), active);
  assert.match(await page.locator('[data-stat="queue"]').innerText(), /^\d+\s+QUEUE LENGTH$/i);
  assert.match(await page.locator('[data-stat="wait"]').innerText(), /\d+\s*min[\s\S]*WAIT FOR A NEW PATIENT/i);
  // The queue shows token labels.
  const firstLabel = (await server.api('GET', `/api/v1/queue?doctor_id=${doctor.id}&date=${b.day}`)).items[0].token_label;
  assert.match(firstLabel, /^[A-Z]+\d+$/);
  await page.locator('.token', { hasText: firstLabel }).first().waitFor();

  // Call, start, and every notice in a visit: none covers a control, at
  // three sizes.
  await page.click('[data-action="call-next"]');
  await page.locator('[data-consult] [data-action="start"]').click();
  await page.locator('[data-patient-name]').waitFor();
  const checks = [];
  for (const vp of [{ width: 1366, height: 768 }, { width: 1920, height: 1080 }, { width: 390, height: 844 }]) {
    await page.setViewportSize(vp);
    await page.fill('[name=notes]', `Seen at ${vp.width}px.`);
    await page.click('[data-action="save-notes"]');
    await page.locator('.toast', { hasText: 'Notes saved' }).first().waitFor();
    checks.push([vp.width, 'notes', await covered(page)]);
    await page.fill('.line--rx [name=drug]', `Drug ${vp.width}`);
    await page.fill('.line--rx [name=dose]', '5 mg');
    await page.click('[data-rx-form] button[type=submit]');
    await page.locator('.toast', { hasText: 'Prescription saved' }).first().waitFor();
    checks.push([vp.width, 'prescription', await covered(page)]);
    if (vp.width === 1366) await screenshot(page, 'doctor-notice-1366');
  }
  for (const [w, what, c] of checks) assert.deepEqual(c, [], `a notice covers controls at ${w}px after ${what}`);
  await page.setViewportSize({ width: 1366, height: 768 });

  // Create invoice: one invoice, the form goes (nothing left to click twice).
  const visit = (await server.api('GET', `/api/v1/visits?doctor_id=${doctor.id}&status=open`)).items[0];
  await page.click('[data-inv-form] button[type=submit]');
  await page.locator('[data-inv-done]').waitFor();
  assert.equal(await page.locator('[data-inv-form]').count(), 0, 'the invoice form is gone');
  assert.deepEqual(await covered(page), []);
  let inv = (await server.api('GET', `/api/v1/invoices?visit_id=${visit.id}`)).items;
  assert.equal(inv.length, 1);
  assert.equal(inv[0].total, 6000);

  // Voided (billing's job): the form comes back, fresh: one default line.
  await server.api('PATCH', `/api/v1/invoices/${inv[0].id}`, { status: 'void' });
  await page.locator('[data-inv-form]').waitFor();
  assert.equal(await page.locator('.line--inv').count(), 1);
  assert.equal(await page.locator('.line--inv [name=description]').inputValue(), 'Consultation');

  // A colleague makes the invoice while this click is on its way: the API
  // refuses the second; the page says so where the doctor is looking.
  let made = null;
  await page.route('**/api/v1/invoices', async (route) => {
    if (route.request().method() === 'POST' && !made) {
      made = await server.api('POST', '/api/v1/invoices', { visit_id: visit.id, currency: 'USD', lines: [{ description: 'Made by the desk', quantity: 1, unit_price: 4500 }] });
    }
    await route.continue();
  });
  await page.click('[data-inv-form] button[type=submit]');
  const alert = page.locator('[data-inv-alert]');
  await alert.waitFor();
  const text = await alert.innerText();
  assert.match(text, /already has an invoice/i);
  assert.match(text, new RegExp(made.id), 'the refusal names the existing invoice');
  await page.locator(`[data-inv-list] [data-invoice-id="${made.id}"]`).waitFor();
  inv = (await server.api('GET', `/api/v1/invoices?visit_id=${visit.id}`)).items.filter((i) => i.status !== 'void');
  assert.equal(inv.length, 1, 'one invoice that is not void');
  assert.deepEqual(await covered(page), []);
  await screenshot(page, 'doctor-invoice-refused');
  await page.unroute('**/api/v1/invoices');
  // Dismiss from the keyboard.
  await page.locator('[data-action="dismiss-invoice-alert"]').focus();
  await page.keyboard.press('Enter');
  await waitFor('alert dismissed', async () => !(await alert.isVisible()));

  // Close the visit: its notice covers nothing either.
  await page.click('[data-action="close-visit"]');
  await page.locator('.toast', { hasText: 'Visit closed' }).first().waitFor();
  assert.deepEqual(await covered(page), []);
  b = await board();
  await waitFor('tiles after the visit', async () => (await page.locator('[data-stat="seen"] b').innerText()) === '1');
  // The only error the browser logged is the refused request itself.
  assert.deepEqual(page.problems.filter((p) => !/status of 409 .*\/api\/v1\/invoices/.test(p)), []);
  await page.closeAll();
});

test("doctor: another doctor's queue is read-only, says so, and offers the way back", async (t) => {
  if (!need(t, CHROMIUM, 'chromium')) return;
  browser ||= await launch();
  const [me, other] = data.doctors;
  const page = await dashboard(browser, server.url, 'doctor', server.token('doctor', me.id));
  await badge(page, 'live');
  assert.ok(await page.locator('[data-readonly]').isHidden(), 'my own queue is not read-only');
  // Choose the colleague from the header, by keyboard.
  await page.locator('.doctor-pick').focus();
  await page.selectOption('.doctor-pick', other.id);
  await page.waitForURL(/doctor=/);
  await badge(page, 'live');
  const note = page.locator('[data-readonly]');
  await note.waitFor();
  assert.match(await note.innerText(), /Read only[\s\S]*Dr\. Lukas Berg/);
  assert.match(await page.locator('[data-queue-title]').innerText(), /Dr\. Lukas Berg’s queue/);
  // No action of the queue's doctor is offered.
  assert.ok(await page.locator('[data-action="call-next"]').isHidden());
  assert.equal(await page.locator('[data-queue] [data-action]').count(), 0);
  assert.equal(await page.locator('[data-rx-form], [data-inv-form], [data-action="close-visit"]').count(), 0);
  // The colleague's queue is still live: a call made elsewhere shows.
  const b = (await server.api('GET', '/api/v1/queue/board')).boards.find((x) => x.doctor_id === other.id);
  const e = (await server.api('GET', `/api/v1/queue?doctor_id=${other.id}&date=${b.day}&status=waiting`)).items[0];
  await server.api('PATCH', `/api/v1/queue/${e.id}`, { status: 'called' });
  await page.locator(`[data-entry-id="${e.id}"][data-status="called"]`).waitFor({ timeout: 3000 });
  await screenshot(page, 'doctor-readonly');
  // Back to my queue, from the keyboard.
  await page.locator('[data-action="my-queue"]').focus();
  await page.keyboard.press('Enter');
  await page.waitForURL((u) => !u.search.includes('doctor='));
  await badge(page, 'live');
  assert.ok(await page.locator('[data-readonly]').isHidden());
  assert.ok(await page.locator('[data-action="call-next"]').isVisible());
  assert.deepEqual(page.problems, []);
  await page.closeAll();

  // An admin on the doctor page: read-only too, with the same note.
  const admin = await dashboard(browser, server.url, 'doctor', server.token('admin'));
  await badge(admin, 'live');
  await admin.locator('[data-readonly]').waitFor();
  assert.ok(await admin.locator('[data-action="call-next"]').isHidden());
  assert.deepEqual(admin.problems, []);
  await admin.closeAll();
});
