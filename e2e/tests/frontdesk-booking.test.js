// Booking, rescheduling and cancelling from the front desk, patient search
// as you type, keyboard use, screen-reader announcements, the browser's
// locale, axe-core, and screenshots at 1366×768 and 1920×1080 (issue 13,
// items 3 and 7 for the front desk).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { Server, seed, browser, open, badge, shot, need, CHROMIUM, sleep, tmpdir } from '../lib.js';
import { until, axe } from './frontdesk-lib.js';

let server; let data; let ctx; let desk;

before(async () => {
  server = await new Server().start();
  data = await seed(server);
});

after(async () => {
  await ctx?.close();
  await server?.cleanup();
});

async function page() {
  if (desk && !desk.isClosed()) return desk;
  ctx ||= await browser({ viewport: { width: 1366, height: 768 } });
  desk = await open(ctx, server.url, 'frontdesk', server.token('coordinator', 'desk-b'));
  await badge(desk, 'live');
  return desk;
}

const names = (p, sel) => p.locator(`${sel} .item__title`).allInnerTexts();

/** local answers the page's local date and HH:MM of an RFC 3339 time. */
const local = (p, iso) => p.evaluate((t) => {
  const d = new Date(t);
  const z = (x) => String(x).padStart(2, '0');
  return { date: `${d.getFullYear()}-${z(d.getMonth() + 1)}-${z(d.getDate())}`, time: `${z(d.getHours())}:${z(d.getMinutes())}` };
}, iso);

async function openBooking(p, query, patientName) {
  await p.locator('[data-action="book"]').click();
  await p.locator('#book[open]').waitFor();
  await p.fill('#book-form [name=patient]', query);
  await p.locator('#book-form .picker__list .item', { hasText: patientName }).locator('[data-pick]').click();
  await p.locator('#book-form [data-picked-name]', { hasText: patientName }).waitFor();
}

test('patient search as you type: name, MRN or phone, server-side, debounced; a stale answer is discarded', async (t) => {
  if (!need(t, CHROMIUM, 'chromium')) return;
  const p = await page();
  const queries = [];
  p.on('request', (r) => { const u = new URL(r.url()); if (u.pathname === '/api/v1/patients' && u.searchParams.has('q')) queries.push(u.searchParams.get('q')); });

  await p.locator('#fd-q').pressSequentially('maria', { delay: 40 });
  await until('results for maria', async () => (await p.locator('.fd-results__list').getAttribute('data-query')) === 'maria');
  assert.deepEqual(await names(p, '.fd-results__list'), ['Maria Silva']);
  assert.deepEqual(queries, ['maria'], 'one request for five keystrokes 40 ms apart (debounced)');

  for (const [q, who] of [['MRN-1004', 'Oliver Smith'], ['0107', "Liam O'Brien"], ['+1 555 0107', "Liam O'Brien"], ['chloe', 'Chloé Martin'], ['PATEL', 'Ravi Patel']]) {
    await p.fill('#fd-q', q);
    await until(`results for ${q}`, async () => (await p.locator('.fd-results__list').getAttribute('data-query')) === q);
    assert.deepEqual(await names(p, '.fd-results__list'), [who], `search ${q}`);
  }
  await p.fill('#fd-q', 'zzzz');
  await p.locator('#fd-q-status', { hasText: 'No patient found' }).waitFor();

  // The answer to "ma" is held 1.2 s; "maria s" typed meanwhile wins.
  const slow = (u) => u.pathname === '/api/v1/patients' && u.searchParams.get('q') === 'ma';
  await p.route(slow, async (route) => { await sleep(1200); await route.continue().catch(() => {}); });
  await p.fill('#fd-q', 'ma');
  await until('the request for ma', () => queries.includes('ma'));
  await p.fill('#fd-q', 'maria s');
  await until('results for maria s', async () => (await p.locator('.fd-results__list').getAttribute('data-query')) === 'maria s');
  await sleep(1500);
  assert.equal(await p.locator('.fd-results__list').getAttribute('data-query'), 'maria s');
  assert.deepEqual(await names(p, '.fd-results__list'), ['Maria Silva'], 'the late answer for “ma” was not shown');
  await p.unroute(slow);

  // From a result: book or add as a walk-in.
  await p.locator('.fd-results__list [data-action="search-walkin"]').click();
  await p.locator('#walkin[open] [data-picked-name]', { hasText: 'Maria Silva' }).waitFor();
  await p.keyboard.press('Escape');
  await p.fill('#fd-q', '');
});

test('booking: patient from the search, doctor and a free time; the API\'s conflicts and rules are shown in the form', async (t) => {
  if (!need(t, CHROMIUM, 'chromium')) return;
  const p = await page();
  const [A, B] = data.doctors;
  const nadia = data.patients[8];

  // A booking through a free time offered for the doctor.
  await openBooking(p, 'nadia', 'Nadia Haddad');
  await p.selectOption('#book-form [name=doctor]', A.id);
  await p.locator('#book-form [data-slot]').first().waitFor();
  const slot = await p.locator('#book-form [data-slot]').first().getAttribute('data-slot');
  await p.locator('#book-form [data-slot]').first().click();
  await p.fill('#book-form [name=reason]', 'Blood pressure check');
  await p.locator('#book-form [data-book-submit]').click();
  await until('the dialog to close', () => p.evaluate(() => !document.getElementById('book').open));
  const mine = (await server.api('GET', `/api/v1/appointments?patient_id=${nadia.id}&doctor_id=${A.id}`)).items;
  assert.equal(mine.length, 1);
  assert.equal((await local(p, mine[0].starts_at)).time, slot);
  assert.equal(Date.parse(mine[0].ends_at) - Date.parse(mine[0].starts_at), 20 * 60000);
  assert.equal(mine[0].reason, 'Blood pressure check');
  await p.locator(`[data-appt-id="${mine[0].id}"]`).waitFor();

  // The doctor is busy then: 409 naming the appointment in the way.
  const busy = data.appts[0]; // Maria Silva with Dr. Okafor
  const at = await local(p, busy.starts_at);
  await openBooking(p, 'sofia', 'Sofia Rossi');
  await p.selectOption('#book-form [name=doctor]', A.id);
  await p.fill('#book-form [name=date]', at.date);
  await p.fill('#book-form [name=time]', at.time);
  await p.locator('#book-form [data-book-submit]').click();
  const err = p.locator('#book-form [data-error]');
  await err.locator('b', { hasText: 'That time is taken' }).waitFor();
  const text = await err.innerText();
  assert.match(text, /Dr\. Amara Okafor already has an appointment/);
  assert.match(text, /Maria Silva/);
  assert.equal(await p.locator('#book-form [name=time]').getAttribute('aria-invalid'), 'true');
  await shot(p, 'frontdesk-booking-conflict-1366');
  assert.ok(await p.locator('#book[open]').count(), 'the dialog stays open to pick another time');

  // The patient is busy then (with another doctor): 409 naming the patient.
  await p.keyboard.press('Escape');
  await openBooking(p, 'MRN-1001', 'Maria Silva');
  await p.selectOption('#book-form [name=doctor]', B.id);
  await p.fill('#book-form [name=date]', at.date);
  await p.fill('#book-form [name=time]', at.time);
  await p.locator('#book-form [data-book-submit]').click();
  await err.locator('b', { hasText: 'That time is taken' }).waitFor();
  assert.match(await err.innerText(), /Maria Silva already has an appointment .*with Dr\. Amara Okafor/);

  // Too far in the past (BOOKING_PAST_GRACE is 15 minutes): 400 naming the start.
  const past = await p.evaluate(() => {
    const d = new Date(Date.now() - 60 * 60000);
    const z = (x) => String(x).padStart(2, '0');
    return { date: `${d.getFullYear()}-${z(d.getMonth() + 1)}-${z(d.getDate())}`, time: `${z(d.getHours())}:${z(d.getMinutes())}` };
  });
  await p.fill('#book-form [name=date]', past.date);
  await p.fill('#book-form [name=time]', past.time);
  await p.locator('#book-form [data-book-submit]').click();
  await err.locator('b', { hasText: 'Not saved' }).waitFor();
  assert.match(await err.innerText(), /starts at: is in the past/);
  assert.equal(await p.locator('#book-form [name=time]').getAttribute('aria-invalid'), 'true');
  await p.keyboard.press('Escape');
  assert.equal((await server.api('GET', `/api/v1/appointments?patient_id=${data.patients[0].id}`)).items.length, 1, 'nothing was booked');
});

test('reschedule and cancel an appointment from the front desk', async (t) => {
  if (!need(t, CHROMIUM, 'chromium')) return;
  const p = await page();
  const a = data.appts[6]; // Sofia Rossi with Dr. Okafor, scheduled
  const row = `[data-appt-id="${a.id}"]`;
  // The list shows today's appointments (an earlier booking may have taken it to its day).
  const today = await p.evaluate(() => new Date().toLocaleDateString('en-CA'));
  if (await p.locator('[data-appt-day]').inputValue() !== today) await p.fill('[data-appt-day]', today);
  await p.locator(`${row} [data-action="reschedule"]`).click();
  await p.locator('#book[open]').waitFor();
  assert.equal(await p.locator('#book-title').innerText(), 'Reschedule appointment');
  assert.ok(await p.locator('#book-form [name=doctor]').isDisabled(), 'an appointment keeps its doctor');
  // To another day, whatever the hour: the list follows it there.
  const tomorrow = await p.evaluate(() => new Date(Date.now() + 86400000).toLocaleDateString('en-CA'));
  await p.fill('#book-form [name=date]', tomorrow);
  await until('tomorrow\'s free times', async () => (await p.locator('#book-form [data-slot]').first().getAttribute('data-day').catch(() => null)) >= tomorrow);
  const target = p.locator('#book-form [data-slot]').last();
  const slot = await target.getAttribute('data-slot');
  await target.click();
  await p.locator('#book-form [data-book-submit]').click();
  await until('the dialog to close', () => p.evaluate(() => !document.getElementById('book').open));
  const moved = await server.api('GET', `/api/v1/appointments/${a.id}`);
  assert.equal((await local(p, moved.starts_at)).time, slot);
  assert.equal(moved.version, a.version + 1);
  await until('the row to show the new time', async () => (await p.locator(`${row} time`).getAttribute('datetime')) === moved.starts_at);

  // The list followed the moved appointment to its day: back to today's.
  if (await p.locator('[data-appt-day]').inputValue() !== today) await p.fill('[data-appt-day]', today);
  const c = data.appts[7]; // Liam O'Brien with Dr. Berg
  await p.locator(`[data-appt-id="${c.id}"] [data-action="cancel-appt"]`).click();
  await p.locator('#confirm[open]').waitFor();
  assert.match(await p.locator('#confirm-text').innerText(), /Liam O'Brien/);
  await p.locator('#confirm [data-confirm-yes]').click();
  await p.locator(`[data-appt-id="${c.id}"][data-status="cancelled"]`).waitFor();
  await until('the server to hold the cancellation', async () => (await server.api('GET', `/api/v1/appointments/${c.id}`)).status === 'cancelled');
  // Keep it: the confirmation's default leaves the appointment alone.
  const k = data.appts[8];
  await p.locator(`[data-appt-id="${k.id}"] [data-action="cancel-appt"]`).click();
  await p.keyboard.press('Enter'); // "Keep it" has the focus
  await sleep(300);
  assert.equal((await server.api('GET', `/api/v1/appointments/${k.id}`)).status, 'scheduled');
});

test('keyboard only: book and call; queue changes are announced to screen readers', async (t) => {
  if (!need(t, CHROMIUM, 'chromium')) return;
  const p = await page();
  const kwame = data.patients[5];
  const before = (await server.api('GET', `/api/v1/appointments?patient_id=${kwame.id}`)).items.length;
  await p.focus('[data-action="book"]');
  await p.keyboard.press('Enter');
  await p.locator('#book[open]').waitFor();
  assert.equal(await p.evaluate(() => document.activeElement.name), 'patient');
  await p.keyboard.type('kwame');
  await p.locator('#book-form [data-pick]').first().waitFor();
  await p.keyboard.press('ArrowDown');
  await p.keyboard.press('Enter');
  await p.locator('#book-form [data-picked-name]', { hasText: 'Kwame Mensah' }).waitFor();
  const tabTo = async (test, what) => {
    for (let i = 0; i < 40; i++) { // a day offers up to 24 free times
      if (await p.evaluate(test)) return;
      await p.keyboard.press('Tab');
    }
    throw new Error(`Tab never reached ${what}`);
  };
  await p.locator('#book-form [data-slot]').first().waitFor();
  await tabTo(() => !!document.activeElement?.dataset?.slot, 'a free time');
  await p.keyboard.press('Enter');
  await tabTo(() => document.activeElement?.hasAttribute('data-book-submit'), 'the submit button');
  await p.keyboard.press('Enter');
  await until('the booking', async () => (await server.api('GET', `/api/v1/appointments?patient_id=${kwame.id}`)).items.length === before + 1);

  // Call with the keyboard.
  const row = p.locator(`[data-doctor-id="${data.doctors[2].id}"] li[data-status="waiting"]`).first();
  const id = await row.getAttribute('data-entry-id');
  await row.locator('[data-action="call"]').focus();
  await p.keyboard.press('Enter');
  await until('the call', async () => (await server.api('GET', `/api/v1/queue/${id}`)).status === 'called');

  // Another desk calls a patient: the live region says so.
  const other = p.locator(`[data-doctor-id="${data.doctors[1].id}"] li[data-status="waiting"]`).first();
  const oid = await other.getAttribute('data-entry-id');
  const token = (await other.locator('.token').innerText()).trim(); // its label, e.g. B2
  await server.api('PATCH', `/api/v1/queue/${oid}`, { status: 'called' });
  await until('the announcement', async () => new RegExp(`token ${token}, .* called to room 2`, 'i').test(await p.locator('[data-announce]').innerText()));
  assert.equal(await p.locator('[data-announce]').getAttribute('aria-live'), 'polite');
});

test('accessibility (axe-core): no serious or critical violations; screenshots at 1366×768 and 1920×1080', async (t) => {
  if (!need(t, CHROMIUM, 'chromium')) return;
  const p = await page();
  const report = (v) => v.map((x) => `${x.impact} ${x.id}: ${x.help}\n    ${x.nodes.join('\n    ')}`).join('\n');
  await p.setViewportSize({ width: 1366, height: 768 });
  await p.evaluate(() => window.scrollTo(0, 0));
  await until('the notices to go', async () => (await p.locator('.toast').count()) === 0, 8000);
  let v = await axe(p);
  assert.deepEqual(v, [], report(v));
  await shot(p, 'frontdesk-1366');
  await p.setViewportSize({ width: 1920, height: 1080 });
  await sleep(300);
  await shot(p, 'frontdesk-1920');

  await p.fill('#fd-q', 'ma');
  await p.locator('.fd-results__list .item').first().waitFor();
  v = await axe(p);
  assert.deepEqual(v, [], report(v));
  await shot(p, 'frontdesk-search-1920');
  await p.keyboard.press('Escape');

  await openBooking(p, 'ravi', 'Ravi Patel');
  await p.fill('#book-form [name=time]', '');
  await p.locator('#book-form [data-book-submit]').click();
  await p.locator('#book-form [data-error]', { hasText: 'Choose' }).waitFor();
  v = await axe(p);
  assert.deepEqual(v, [], report(v));
  await shot(p, 'frontdesk-booking-1920');
  await p.keyboard.press('Escape');
  await p.locator('[data-action="walkin"]').click();
  v = await axe(p);
  assert.deepEqual(v, [], report(v));
  await p.keyboard.press('Escape');
  await p.setViewportSize({ width: 1366, height: 768 });
});

test('dates, times and numbers follow the browser\'s locale (Intl)', async (t) => {
  if (!need(t, CHROMIUM, 'chromium')) return;
  const { chromium } = await import('playwright-core');
  const dir = tmpdir('cp-chromium-de-');
  const de = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM, headless: true, locale: 'de-DE', timezoneId: 'UTC', viewport: { width: 1366, height: 768 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
  });
  try {
    const p = await open(de, server.url, 'frontdesk', server.token('coordinator', 'desk-de'));
    await badge(p, 'live');
    const day = new Intl.DateTimeFormat('de-DE', { weekday: 'long', day: 'numeric', month: 'long' }).format(new Date(`${data.day}T12:00:00Z`));
    assert.equal(await p.locator('[data-day]').innerText(), day);
    const a = data.appts[8];
    const hm = new Intl.DateTimeFormat('de-DE', { hour: 'numeric', minute: '2-digit', timeZone: 'UTC' }).format(new Date(a.starts_at));
    assert.equal(await p.locator(`[data-appt-id="${a.id}"] time`).innerText(), hm);
    assert.doesNotMatch(hm, /AM|PM/);
    await shot(p, 'frontdesk-de-1366');
  } finally {
    await de.close().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a fully booked day offers the next day with free times, and picking one moves the date', async (t) => {
  if (!need(t, CHROMIUM, 'chromium')) return;
  const p = await page();
  const A = data.doctors[0];
  // Three days ahead (earlier tests book the next free days), 08:00–18:00
  // in this machine's (and the browser's) time zone: one appointment fills
  // the doctor's day.
  const d = new Date(); d.setDate(d.getDate() + 3);
  const at = (h) => new Date(d.getFullYear(), d.getMonth(), d.getDate(), h).toISOString();
  const z = (n) => String(n).padStart(2, '0');
  const full = `${d.getFullYear()}-${z(d.getMonth() + 1)}-${z(d.getDate())}`;
  await server.api('POST', '/api/v1/appointments', { patient_id: data.patients[5].id, doctor_id: A.id, starts_at: at(8), ends_at: at(18), reason: 'day surgery' });
  await openBooking(p, 'nadia', 'Nadia Haddad');
  await p.selectOption('#book-form [name=doctor]', A.id);
  await p.fill('#book-form [name=date]', full);
  await until('the next day\'s free times', async () => {
    const day = await p.locator('#book-form [data-slot]').first().getAttribute('data-day').catch(() => null);
    return day && day > full;
  });
  const first = p.locator('#book-form [data-slot]').first();
  const day = await first.getAttribute('data-day');
  assert.match(await p.locator('[data-slots-label]').innerText(), /No free .* The next free times, on/);
  await first.click();
  assert.equal(await p.locator('#book-form [name=date]').inputValue(), day, 'picking a time of the next day moves the date');
  assert.equal(await p.locator('#book-form [name=time]').inputValue(), await first.getAttribute('data-slot'));
  await until('that day\'s times, the picked one pressed', async () => (await p.locator('#book-form [data-slot][aria-pressed="true"]').count()) === 1);
  await p.keyboard.press('Escape');
});
