// Proxy-hostile path: the front desk behind nginx configured to hold
// responses back (gzip on text/event-stream buffers the stream, headers
// included, and X-Accel-Buffering is ignored) and to cut requests idle for
// 10 s (proxy_read_timeout; the server's heartbeat is 15 s, so streams and
// long-polls are cut). Every update must still show, by long-poll or resume.
// The configuration is read from docs/deploy.md (its "buffering" block).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  Server, seed, browser, open, badge, shot, need, CHROMIUM, NGINX, sleep, head, events, trackSeqs, seqsOf, startNginx, docBlock,
} from '../lib.js';

let server; let data; let ctx; let nginx;

before(async () => {
  server = await new Server({ env: { HEARTBEAT: '15s' } }).start();
  data = await seed(server);
});

after(async () => {
  await ctx?.close();
  await nginx?.stop();
  await server?.cleanup();
});

test('behind a buffering nginx that cuts requests after 10 s, every update shows', async (t) => {
  if (!need(t, CHROMIUM, 'chromium') || !need(t, NGINX, 'nginx')) return;
  // The configuration docs/deploy.md shows under "A proxy that works against you".
  nginx = await startNginx(server.url, docBlock('deploy.md', 'nginx', 'buffering'));
  ctx = await browser();
  // hb=2: the page expects a heartbeat every 2 s, so a stream that shows
  // nothing for 4 s is judged held back by a proxy.
  const desk = await open(ctx, nginx.url, 'frontdesk', server.token('coordinator'), { hb: 2 });
  const opened = Date.now();
  await desk.locator('.cp-badge[data-state="fallback"]').waitFor({ timeout: 20000 });
  // The stream never shows a byte through this proxy: the client must notice
  // and long-poll.
  await desk.waitForFunction(() => globalThis.clinicpulse.conn.transport === 'longpoll', null, { timeout: 20000 });
  const detectMs = Date.now() - opened;
  const transport = await desk.evaluate(() => globalThis.clinicpulse.conn.transport);
  await trackSeqs(desk);
  const from = await desk.evaluate(() => globalThis.clinicpulse.conn.cursor);

  // Ten walk-ins over ~25 s (idle gaps let nginx cut long-polls and streams).
  const latencies = [];
  const patients = data.patients.slice(0, 10);
  for (const [i, p] of patients.entries()) {
    const t0 = Date.now();
    // Another doctor than the seed's: one active entry per patient per doctor.
    const e = await server.api('POST', '/api/v1/queue', { patient_id: p.id, doctor_id: data.doctors[(i + 1) % 3].id });
    await desk.locator(`[data-entry-id="${e.id}"]`).waitFor({ timeout: 30000 });
    latencies.push(Date.now() - t0);
    await sleep(i % 3 === 2 ? 11000 : 500);
  }
  const h = await head(server);
  await desk.waitForFunction((s) => globalThis.clinicpulse.conn.cursor >= s, h, { timeout: 30000 });
  await sleep(500);
  const delivered = await seqsOf(desk);
  const expected = (await events(server, from)).map((e) => e.seq);
  assert.deepEqual(delivered, expected, 'every event once, in order');
  for (const p of patients) {
    const rows = await desk.locator(`[data-patient="${p.id}"][data-status="waiting"]`).count();
    const entries = (await server.api('GET', `/api/v1/queue?patient_id=${p.id}&status=waiting`)).items.length;
    assert.equal(rows, entries, `${p.name} shown ${rows} times for ${entries} entries`);
  }
  await shot(desk, 'frontdesk-behind-proxy');
  const max = Math.max(...latencies);
  console.log(`# proxy: buffering detected, ${transport} after ${detectMs} ms; ${latencies.length} updates shown, latency ms ${JSON.stringify(latencies)} (max ${max}); ${delivered.length} events once, in order`);
  assert.ok(max < 6000, `an update took ${max} ms`);
  assert.equal(transport, 'longpoll');
});
