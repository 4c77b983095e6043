// Three tabs of one browser share one connection: a small proxy in front of
// the server counts stream requests. Closing the leader tab hands the
// connection to another tab without a missed or doubled event.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  Server, seed, browser, open, badge, need, CHROMIUM, sleep, head, events, trackSeqs, seqsOf, countingProxy,
} from '../lib.js';

let server; let data; let ctx; let proxy;

before(async () => {
  server = await new Server().start();
  data = await seed(server);
  proxy = await countingProxy(server.url);
});

after(async () => {
  await ctx?.close();
  await proxy?.close();
  await server?.cleanup();
});

const isLeader = (p) => p.evaluate(() => globalThis.clinicpulse.conn.leader);

test('three tabs hold one stream; closing the leader hands over without a missed event', async (t) => {
  if (!need(t, CHROMIUM, 'chromium')) return;
  ctx = await browser();
  const token = server.token('coordinator');
  const tabs = [];
  for (let i = 0; i < 3; i++) {
    const p = await open(ctx, proxy.url, 'frontdesk', token);
    await badge(p, 'live');
    tabs.push(p);
  }
  await sleep(1500);
  assert.equal(proxy.stats.streamsOpen, 1, 'one stream connection for three tabs');
  assert.equal(proxy.stats.streamsOpened, 1, 'no other stream was opened');
  const leaders = await Promise.all(tabs.map(isLeader));
  assert.equal(leaders.filter(Boolean).length, 1, 'exactly one leader');
  for (const p of tabs) await trackSeqs(p);
  const from = await head(server);

  // Updates while all three are open reach every tab.
  const first = await server.api('POST', '/api/v1/queue', { patient_id: data.patients[5].id, doctor_id: data.doctors[0].id });
  for (const p of tabs) await p.locator(`[data-entry-id="${first.id}"]`).waitFor({ timeout: 3000 });

  // Close the leader; keep writing during the handover.
  const li = leaders.indexOf(true);
  const closedAt = Date.now();
  const closing = tabs[li].close();
  const rest = tabs.filter((_, i) => i !== li);
  const made = [];
  for (const [i, p] of data.patients.slice(6, 10).entries()) {
    made.push(await server.api('POST', '/api/v1/queue', { patient_id: p.id, doctor_id: data.doctors[(i + 1) % 3].id }));
    await sleep(150);
  }
  await closing;
  const h = await head(server);
  for (const p of rest) {
    await p.waitForFunction((s) => globalThis.clinicpulse.conn.cursor >= s, h, { timeout: 20000 });
  }
  const handoverMs = Date.now() - closedAt;
  await sleep(1500);
  const newLeaders = await Promise.all(rest.map(isLeader));
  assert.equal(newLeaders.filter(Boolean).length, 1, 'one of the remaining tabs leads');
  assert.equal(proxy.stats.streamsOpen, 1, 'still one stream connection');
  const expected = (await events(server, from)).map((e) => e.seq);
  for (const p of rest) {
    const got = await seqsOf(p);
    assert.deepEqual(got, expected, 'every event once, in order, in every remaining tab');
    for (const e of made) assert.equal(await p.locator(`[data-entry-id="${e.id}"]`).count(), 1);
  }
  console.log(`# tabs: 3 tabs, ${proxy.stats.streamsOpened} stream requests in all (max ${proxy.stats.maxOpen} open at once); after closing the leader, caught up in ${handoverMs} ms; ${expected.length} events once, in order, in both remaining tabs`);
});
