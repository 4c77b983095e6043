// All five dashboards at once, as a clinic uses them (issue 13, items 6 and
// 7): front desk, doctor, patient, waiting-room display and operations open
// side by side, each on its own "device" (browser context), while the desk
// and the doctor work through the pages and another desk changes the queues
// several times a second. Then, on the same pages:
//  - no console error and no page error on any page, the whole time;
//  - axe-core 4.14: no serious or critical violation on any page;
//  - every control is reached with Tab, and the doctor's actions work from
//    the keyboard;
//  - dates, times and numbers follow the browser's locale (de-DE here);
//  - screenshots of every page at 1366×768 and 1920×1080:
//    e2e/artifacts/page-<name>-<width>.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Server, seed, need, CHROMIUM, sleep, badge } from '../lib.js';
import { launch, dashboard, axe, keyboardReach, screenshot } from './pages-helpers.js';

let server; let data; let browser;
const pages = {}; // name → page

before(async () => {
  server = await new Server().start();
  data = await seed(server);
});

after(async () => {
  for (const p of Object.values(pages)) await p.closeAll().catch(() => {});
  await browser?.close();
  await server?.cleanup();
});

// busyDesk changes the queues of doctors 1 and 2 about every 250 ms until
// stopped: walk-ins, calls, consultations started and closed, re-calls.
function busyDesk() {
  let on = true;
  let n = 0;
  const stats = { writes: 0 };
  const run = (async () => {
    const names = ['Ana', 'Bo', 'Cyd', 'Dee', 'Eli', 'Fay', 'Gus', 'Hal'];
    while (on) {
      const doc = data.doctors[1 + (n % 2)];
      const p = await server.api('POST', '/api/v1/patients', { name: `${names[n % names.length]} Walk-in ${n}` });
      const q = await server.api('POST', '/api/v1/queue', { patient_id: p.id, doctor_id: doc.id });
      stats.writes += 2;
      if (n % 3 === 0) {
        const called = await server.api('PATCH', `/api/v1/queue/${q.id}`, { status: 'called' });
        stats.writes++;
        if (n % 2 === 0) {
          await server.api('POST', `/api/v1/queue/${called.id}/recall`);
          const v = await server.api('POST', '/api/v1/visits', { queue_entry_id: q.id });
          await server.api('PATCH', `/api/v1/visits/${v.id}`, { status: 'closed' });
          stats.writes += 3;
        }
      }
      n++;
      await sleep(250);
    }
  })();
  return { stats, stop: async () => { on = false; await run; } };
}

const problems = () => Object.values(pages).flatMap((p) => p.problems);

test('five dashboards in use side by side, events flowing: no console error, no page error', async (t) => {
  if (!need(t, CHROMIUM, 'chromium')) return;
  browser = await launch();
  const [doc0, , doc2] = data.doctors;
  const b2 = (await server.api('GET', '/api/v1/queue/board')).boards.find((b) => b.doctor_id === doc2.id);
  const mine = (await server.api('GET', `/api/v1/queue?doctor_id=${doc2.id}&date=${b2.day}&status=waiting`)).items
    .find((q) => q.token === b2.waiting[b2.waiting.length - 1]);
  const open = async (name, token) => { pages[name] = await dashboard(browser, server.url, name, token); };
  await open('frontdesk', server.token('coordinator', 'desk-1'));
  await open('doctor', server.token('doctor', doc0.id));
  await open('patient', server.token('patient', mine.patient_id));
  await open('display', server.token('display', 'screen-1'));
  await open('ops', server.token('admin', 'ops-1'));
  pages.index = await dashboard(browser, server.url, 'index', null);
  for (const name of ['frontdesk', 'doctor', 'patient', 'display', 'ops']) await badge(pages[name], 'live');
  await pages.ops.locator('[data-tile="streams"]').waitFor({ timeout: 10000 });

  const desk = busyDesk();
  const started = Date.now();
  // The front desk calls Dr. Raman's next patient; the doctor works a visit
  // through the page, from the keyboard for the call.
  const doc = pages.doctor;
  await pages.frontdesk.locator(`[data-doctor-id="${doc2.id}"] [data-action="call-next"]`).first().click();
  await doc.locator('[data-action="call-next"]').focus();
  await doc.keyboard.press('Enter');
  const start = doc.locator('[data-consult] [data-action="start"]');
  await start.waitFor();
  await start.focus();
  await doc.keyboard.press('Enter');
  await doc.locator('[data-patient-name]').waitFor();
  await doc.locator('[name=notes]').fill('Sore throat, no fever.');
  await doc.locator('[data-action="save-notes"]').click();
  await doc.locator('.line--rx [name=drug]').fill('Ibuprofen');
  await doc.locator('.line--rx [name=dose]').fill('200 mg');
  await doc.locator('.line--rx [name=dose]').press('Enter'); // submits the prescription form
  await doc.locator('[data-rx-list] .item__title', { hasText: 'Ibuprofen' }).waitFor();
  await doc.locator('[data-inv-form] button[type=submit]').click();
  await doc.locator('[data-inv-done]').waitFor();
  // The patient is called while the pages run.
  await server.api('PATCH', `/api/v1/queue/${mine.id}`, { status: 'called' });
  await pages.patient.locator('[data-hero][data-status="called"]').waitFor({ timeout: 3000 });
  await doc.locator('[data-action="close-visit"]').click();
  await doc.locator('[data-consult] .empty-state').waitFor();
  // The chart's crosshair on the operations page.
  await pages.ops.waitForFunction(() => Number(document.querySelector('[data-series="polls"]')?.dataset.points) >= 2, null, { timeout: 15000 });
  const plot = await pages.ops.locator('[data-series="polls"] [data-plot]').boundingBox();
  await pages.ops.mouse.move(plot.x + plot.width / 2, plot.y + plot.height / 2);
  while (Date.now() - started < 12000) await sleep(250);
  await desk.stop();
  await sleep(1500); // the last events and renders
  console.log(`# five pages, ${desk.stats.writes} writes in ${Math.round((Date.now() - started) / 1000)} s; console warnings: ${Object.values(pages).flatMap((p) => p.warnings).length}`);
  assert.deepEqual(problems(), [], 'console errors or page errors');
});

test('operations: the tiles, the 304 share and the chart read the same sample', async (t) => {
  if (!need(t, CHROMIUM, 'chromium') || !pages.ops) return;
  const ops = pages.ops;
  await ops.mouse.move(0, 0);
  // Over several refreshes (every 5 s), read everything at one moment.
  for (let i = 0; i < 3; i++) {
    const f = await ops.evaluate(() => {
      const num = (k) => document.querySelector(`[data-tile="${k}"]`)?.dataset.num;
      const cap = (s) => document.querySelector(`[data-series="${s}"] figcaption b`)?.textContent;
      return {
        polls: num('polls'), events: num('events'), streams: num('streams'),
        pollsText: document.querySelector('[data-tile="polls"] [data-value]').firstChild.textContent,
        eventsText: document.querySelector('[data-tile="events"] [data-value]').firstChild.textContent,
        streamsText: document.querySelector('[data-tile="streams"] [data-value]').textContent,
        chartPolls: cap('polls'), chartEvents: cap('events'), chartStreams: cap('streams'),
        shareSub: document.querySelector('[data-tile="share_304"] .ops-tile__sub').textContent,
        when: document.querySelector('[data-series="polls"] .ops-spark__when').textContent,
      };
    });
    assert.equal(f.when, 'latest');
    assert.equal(f.chartPolls, f.pollsText, `polls: tile ${f.pollsText}, chart ${f.chartPolls}`);
    assert.equal(f.chartEvents, f.eventsText, `events: tile ${f.eventsText}, chart ${f.chartEvents}`);
    assert.equal(f.chartStreams, f.streamsText, `streams: tile ${f.streamsText}, chart ${f.chartStreams}`);
    assert.equal(Number(f.polls) > 0, !/^No polls/.test(f.shareSub), `polls ${f.polls} beside "${f.shareSub}"`);
    await sleep(5200);
  }
  assert.deepEqual(ops.problems, []);
});

test('axe-core: no serious or critical violation on any page', async (t) => {
  if (!need(t, CHROMIUM, 'chromium') || !pages.doctor) return;
  // The doctor page with a consultation open shows the most controls.
  const b = (await server.api('GET', '/api/v1/queue/board')).boards.find((x) => x.doctor_id === data.doctors[0].id);
  if (b.waiting.length) {
    await pages.doctor.locator('[data-action="call-next"]').click();
    await pages.doctor.locator('[data-consult] [data-action="start"]').click();
    await pages.doctor.locator('[data-patient-name]').waitFor();
  }
  const found = {};
  for (const [name, page] of Object.entries(pages)) found[name] = await axe(page);
  for (const [name, v] of Object.entries(found)) if (v.length) console.log(`# axe ${name}:`, JSON.stringify(v, null, 1));
  assert.deepEqual(found, { frontdesk: [], doctor: [], patient: [], display: [], ops: [], index: [] });
});

test('keyboard: Tab reaches every control on every page', async (t) => {
  if (!need(t, CHROMIUM, 'chromium') || !pages.doctor) return;
  const missed = {};
  for (const [name, page] of Object.entries(pages)) missed[name] = await keyboardReach(page, name === 'frontdesk' ? 300 : 120);
  assert.deepEqual(missed, { frontdesk: [], doctor: [], patient: [], display: [], ops: [], index: [] });
});

test('screenshots of every page at 1366×768 and 1920×1080', async (t) => {
  if (!need(t, CHROMIUM, 'chromium') || !pages.doctor) return;
  for (const [w, h] of [[1366, 768], [1920, 1080]]) {
    for (const [name, page] of Object.entries(pages)) {
      await page.setViewportSize({ width: w, height: h });
      await sleep(250);
      await screenshot(page, `page-${name}-${w}`);
    }
  }
  assert.deepEqual(problems(), []);
});

test("dates, times and numbers follow the browser's locale (de-DE)", async (t) => {
  if (!need(t, CHROMIUM, 'chromium') || !browser) return;
  const opts = { locale: 'de-DE', viewport: { width: 1366, height: 768 } };
  const display = await dashboard(browser, server.url, 'display', server.token('display', 'screen-de'), opts);
  const doctor = await dashboard(browser, server.url, 'doctor', server.token('doctor', data.doctors[1].id), opts);
  const ops = await dashboard(browser, server.url, 'ops', server.token('admin', 'ops-de'), opts);
  try {
    await Promise.all([badge(display, 'live'), badge(doctor, 'live'), badge(ops, 'live')]);
    const clock = await display.locator('[data-clock]').innerText();
    assert.match(clock, /^\d{2}:\d{2}$/, `24-hour clock: ${clock}`);
    const date = await display.locator('[data-date]').innerText();
    assert.match(date, /^(Montag|Dienstag|Mittwoch|Donnerstag|Freitag|Samstag|Sonntag), \d{1,2}\. \p{L}+$/u, date);
    assert.match(await display.locator('.board__foot', { hasText: 'waiting' }).first().innerText(), /\d+ Minuten/);
    const wait = await doctor.locator('[data-stat="wait"] b').innerText();
    assert.match(wait, /\d+\s*(Min\.|Std\.)/, `minutes or hours in German: ${wait}`); // past an hour the wait reads in hours
    assert.match(await doctor.locator('.clock').innerText(), /^\d{2}:\d{2}$/);
    await ops.locator('[data-tile="streams"]').waitFor({ timeout: 10000 });
    assert.match(await ops.locator('[data-sample-at]').innerText(), /^um \d{2}:\d{2}:\d{2}|^at \d{2}:\d{2}:\d{2}/);
    for (const p of [display, doctor, ops]) assert.deepEqual(p.problems, []);
    await screenshot(display, 'page-display-de');
  } finally {
    for (const p of [display, doctor, ops]) await p.closeAll();
  }
});
