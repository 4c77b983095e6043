// Losing the stream and losing the network: the badge tells, and no update
// is missed, doubled or applied twice.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  Server, seed, browser, open, badge, shot, need, CHROMIUM, sleep, head, events, trackSeqs, seqsOf,
} from '../lib.js';

let server; let data; let ctx;

before(async () => {
  server = await new Server().start();
  data = await seed(server);
});

after(async () => {
  await ctx?.close();
  await server?.cleanup();
});

async function caughtUp(page, seq, timeout = 30000) {
  await page.waitForFunction((s) => globalThis.clinicpulse.conn.cursor >= s, seq, { timeout });
}

function assertExactlyOnce(delivered, expected, what) {
  assert.deepEqual(delivered, [...delivered].sort((a, b) => a - b), `${what}: delivered out of order`);
  assert.equal(new Set(delivered).size, delivered.length, `${what}: an event was delivered twice`);
  assert.deepEqual(delivered, expected, `${what}: delivered seqs differ from the log`);
}

test('server restart: the badge goes red or amber, then green; nothing missed or doubled', async (t) => {
  if (!need(t, CHROMIUM, 'chromium')) return;
  ctx = await browser();
  const desk = await open(ctx, server.url, 'frontdesk', server.token('coordinator'));
  await badge(desk, 'live');
  await trackSeqs(desk);
  const from = await desk.evaluate(() => globalThis.clinicpulse.conn.cursor);

  const down = Date.now();
  await server.stop();
  await desk.locator('.cp-badge[data-state="offline"], .cp-badge[data-state="fallback"]').waitFor({ timeout: 10000 });
  const lostMs = Date.now() - down;
  const seenState = await desk.locator('.cp-badge').getAttribute('data-state');
  await shot(desk, 'frontdesk-offline');

  // Back on the same port and database; changes are made before the page
  // reconnects (its backoff gives them time).
  await server.start();
  const walkins = data.patients.slice(0, 6);
  for (const [i, p] of walkins.entries()) {
    // Another doctor than the appointment's: one active entry per patient per doctor.
    await server.api('POST', '/api/v1/queue', { patient_id: p.id, doctor_id: data.doctors[(i + 1) % 3].id });
  }
  const back = Date.now();
  await badge(desk, 'live', 40000);
  const greenMs = Date.now() - back;
  const h = await head(server);
  await caughtUp(desk, h);
  await sleep(500);
  const delivered = await seqsOf(desk);
  const expected = (await events(server, from)).map((e) => e.seq);
  assertExactlyOnce(delivered, expected, 'front desk');
  // On the page: each walk-in once (the seeded appointment check-ins are other entries).
  for (const p of walkins) {
    const n = await desk.locator(`[data-patient="${p.id}"][data-status="waiting"]`).count();
    const entries = (await server.api('GET', `/api/v1/queue?patient_id=${p.id}&status=waiting`)).items.length;
    assert.equal(n, entries, `${p.name}: ${n} rows on the page, ${entries} waiting entries`);
  }
  console.log(`# restart: badge ${seenState} after ${lostMs} ms, live again ${greenMs} ms after restart; ${delivered.length} events delivered once, in order (seq ${from + 1}..${h})`);
  await desk.close();
});

test('offline: two actions are queued and applied exactly once when the network returns', async (t) => {
  if (!need(t, CHROMIUM, 'chromium')) return;
  ctx ||= await browser();
  const desk = await open(ctx, server.url, 'frontdesk', server.token('coordinator'));
  await badge(desk, 'live');
  const b = (await server.api('GET', '/api/v1/queue/board')).boards.find((x) => x.doctor_id === data.doctors[1].id);
  const toCall = (await server.api('GET', `/api/v1/queue?doctor_id=${b.doctor_id}&date=${b.day}`)).items.find((q) => q.token === b.waiting[0]);
  const walkin = data.patients[11];
  const before = (await server.api('GET', `/api/v1/queue?patient_id=${walkin.id}`)).items.length;
  const from = await head(server);

  await ctx.setOffline(true);
  await badge(desk, 'offline', 15000);
  // 1. A walk-in through the dialog.
  await desk.click('[data-action="walkin"]');
  await desk.fill('#walkin-form [name=patient]', walkin.mrn);
  await desk.locator(`#walkin-form [data-pick="${walkin.id}"]`).click();
  await desk.selectOption('#walkin-form [name=doctor]', data.doctors[0].id); // the seed queued this patient with doctors[2]
  await desk.click('#walkin-add');
  await desk.locator(`[data-pending="${walkin.id}"]`).waitFor();
  // 2. Call the next patient of Dr. Berg (optimistic).
  await desk.click(`[data-doctor-id="${b.doctor_id}"] [data-action="call-next"]`);
  await desk.locator(`[data-entry-id="${toCall.id}"][data-status="called"]`).waitFor();
  await desk.locator('.cp-badge', { hasText: '2 to sync' }).waitFor();
  await shot(desk, 'frontdesk-offline-queued');
  const stillServer = await server.api('GET', `/api/v1/queue/${toCall.id}`);
  assert.equal(stillServer.status, 'waiting', 'nothing reached the server while offline');

  const online = Date.now();
  await ctx.setOffline(false);
  await badge(desk, 'live', 30000);
  await desk.waitForFunction(() => globalThis.clinicpulse.conn.queued === 0, null, { timeout: 20000 });
  const syncedMs = Date.now() - online;
  const after = (await server.api('GET', `/api/v1/queue?patient_id=${walkin.id}`)).items;
  assert.equal(after.length, before + 1, 'the walk-in was created exactly once');
  await desk.waitForFunction(([id, n]) => document.querySelectorAll(`[data-patient="${id}"][data-status="waiting"]`).length === n,
    [walkin.id, after.filter((q) => q.status === 'waiting').length], { timeout: 5000 });
  assert.equal(await desk.locator(`[data-pending="${walkin.id}"]`).count(), 0);
  const called = await server.api('GET', `/api/v1/queue/${toCall.id}`);
  assert.equal(called.status, 'called');
  assert.equal(called.version, toCall.version + 1, 'the call was applied exactly once');
  const log = await events(server, from);
  assert.equal(log.filter((e) => e.type === 'queue.created' && e.data?.patient_id === walkin.id).length, 1);
  assert.equal(log.filter((e) => e.type === 'queue.updated' && e.id === toCall.id).length, 1);
  console.log(`# offline: 2 writes queued, synced ${syncedMs} ms after going online; walk-in created once, call applied once (version ${toCall.version}→${called.version})`);
});

test('a write whose response is lost is replayed with its Idempotency-Key and applied once', async (t) => {
  if (!need(t, CHROMIUM, 'chromium')) return;
  ctx ||= await browser();
  const desk = await open(ctx, server.url, 'frontdesk', server.token('coordinator'));
  await badge(desk, 'live');
  const walkin = data.patients[10];
  const before = (await server.api('GET', `/api/v1/queue?patient_id=${walkin.id}`)).items.length;
  // The first POST reaches the server, but its response is dropped.
  let dropped = 0;
  await desk.route('**/api/v1/queue', async (route) => {
    if (route.request().method() !== 'POST' || dropped) return route.continue();
    dropped++;
    await route.fetch();
    await route.abort('connectionreset');
  });
  await desk.click('[data-action="walkin"]');
  await desk.fill('#walkin-form [name=patient]', walkin.mrn);
  await desk.locator(`#walkin-form [data-pick="${walkin.id}"]`).click();
  await desk.click('#walkin-add');
  await desk.waitForFunction(() => globalThis.clinicpulse.conn.queued === 0 && document.querySelector('.cp-badge[data-state="live"]'), null, { timeout: 20000 });
  await sleep(500);
  const after = (await server.api('GET', `/api/v1/queue?patient_id=${walkin.id}`)).items.length;
  assert.equal(dropped, 1);
  assert.equal(after, before + 1, 'the replay did not create a second entry');
  console.log('# lost response: 1 POST applied, response dropped, replayed once with the same key → still 1 entry');
});
