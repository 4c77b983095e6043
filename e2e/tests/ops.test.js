// The operations page in a real browser: as an admin it shows the instance's
// live numbers from GET /api/v1/ops/stats — open streams and a 304 share
// taken from real traffic (writes, conditional polls and SSE streams made
// here through the API) within ~12 s (the server samples every 5 s), a chart
// of the history, a pause while the tab is hidden, and a message when the
// server cannot be reached; a coordinator sees "operations stats are for
// admins". Screenshots: e2e/artifacts/ops.png (desktop), ops-wall.png,
// ops-phone.png, ops-forbidden.png, ops-offline.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Server, browser, open, badge, shot, need, CHROMIUM, sleep, ARTIFACTS } from '../lib.js';

let server; let ctx;
const streams = []; // AbortControllers of the SSE streams opened here

before(async () => {
  server = await new Server().start();
});

after(async () => {
  for (const s of streams) s.abort();
  await ctx?.close();
  await server?.cleanup();
});

// openStream opens an SSE stream as an admin and keeps reading it.
async function openStream() {
  const ac = new AbortController();
  const res = await fetch(`${server.url}/api/v1/stream`, {
    headers: { Authorization: `Bearer ${server.token('admin')}`, Accept: 'text/event-stream' }, signal: ac.signal,
  });
  assert.equal(res.status, 200, 'stream opened');
  (async () => { try { for await (const _ of res.body) { /* drain */ } } catch { /* aborted */ } })();
  streams.push(ac);
  return ac;
}

// traffic writes once a second and polls the doctors list conditionally
// every 150 ms (a 200 after each write, 304s in between) until stopped.
function traffic() {
  const counts = { writes: 0, polls: 0, notModified: 0 };
  let on = true;
  const auth = { Authorization: `Bearer ${server.token('admin')}` };
  const writer = (async () => {
    for (let i = 0; on; i++) {
      await server.api('POST', '/api/v1/doctors', { name: `Dr. Load ${i}`, specialty: 'General practice', room: String(10 + i) });
      counts.writes++;
      await sleep(1000);
    }
  })();
  const poller = (async () => {
    let etag = '';
    while (on) {
      const res = await fetch(`${server.url}/api/v1/doctors`, { headers: { ...auth, ...(etag ? { 'If-None-Match': etag } : {}) } });
      await res.arrayBuffer();
      counts.polls++;
      if (res.status === 304) counts.notModified++;
      etag = res.headers.get('etag') || etag;
      await sleep(150);
    }
  })();
  return { counts, stop: async () => { on = false; await Promise.all([writer, poller]); } };
}

const num = (page, key) => page.evaluate((k) => {
  const v = document.querySelector(`[data-tile="${k}"]`)?.dataset.num;
  return v === undefined || v === '' ? null : Number(v);
}, key);

test('operations: live tiles from real traffic, chart, pause when hidden, network and 403 messages', async (t) => {
  if (!need(t, CHROMIUM, 'chromium')) return;
  ctx = await browser();
  await server.api('POST', '/api/v1/doctors', { name: 'Dr. Amara Okafor', specialty: 'General practice', room: '1' });

  const ops = await open(ctx, server.url, 'ops', server.token('admin'));
  const statsRequests = [];
  ops.on('request', (r) => { if (r.url().includes('/api/v1/ops/stats')) statsRequests.push(Date.now()); });
  await badge(ops, 'live');
  await ops.locator('[data-tile="streams"]').waitFor({ timeout: 10000 });
  assert.match(await ops.locator('[data-tile="listener"]').innerText(), /Single instance[\s\S]*SQLite/);
  assert.match(await ops.locator('[data-tile="instance"]').innerText(), /SQLite/);

  // Two streams of our own, writes and conditional polls.
  await openStream();
  await openStream();
  const load = traffic();
  const started = Date.now();
  await ops.waitForFunction(() => {
    const n = (k) => Number(document.querySelector(`[data-tile="${k}"]`)?.dataset.num || 0);
    return n('streams') >= 2 && n('share_304') > 0 && n('polls') > 0 && n('events') > 0;
  }, null, { timeout: 12000, polling: 250 });
  const shownMs = Date.now() - started;
  const shown = {
    streams: await num(ops, 'streams'), polls: await num(ops, 'polls'), events: await num(ops, 'events'),
    share304: await num(ops, 'share_304'), longPolls: await num(ops, 'long_polls'), slow: await num(ops, 'slow'),
  };
  const api = await server.api('GET', '/api/v1/ops/stats');
  console.log(`# ops tiles after ${shownMs} ms of traffic:`, JSON.stringify(shown), 'traffic:', JSON.stringify(load.counts));
  assert.ok(shown.streams >= 2, `streams tile ${shown.streams}`);
  assert.ok(shown.share304 > 0 && shown.share304 <= 1, `304 share ${shown.share304}`);
  assert.equal(shown.slow, 0);
  assert.ok(Math.abs(shown.streams - api.current.streams) <= 1, `page ${shown.streams} vs API ${api.current.streams} streams`);
  // The share reads as a percentage.
  assert.match(await ops.locator('[data-tile="share_304"] [data-value]').innerText(), /^\d{1,3}\s*%$|^<1\s*%$/);

  // Let the chart gather a few samples, then take the pictures.
  await ops.waitForFunction(() => Number(document.querySelector('[data-series="streams"]')?.dataset.points) >= 4, null, { timeout: 25000 });
  for (const s of ['events', 'polls', 'streams']) {
    const d = await ops.locator(`[data-series="${s}"] .ops-spark__line`).getAttribute('d');
    assert.ok(d.split(/[LHV]/).length >= 4, `${s} line ${d}`);
  }
  // The crosshair reads a past sample in all three panels.
  const plot = await ops.locator('[data-series="polls"] [data-plot]').boundingBox();
  await ops.mouse.move(plot.x + plot.width * 0.8, plot.y + plot.height / 2);
  await ops.locator('[data-series="streams"] .ops-spark__cross').waitFor({ timeout: 2000 });
  assert.match(await ops.locator('[data-series="events"] .ops-spark__when').innerText(), /\d:\d\d/);
  await ops.mouse.move(0, 0);
  await load.stop();
  await shot(ops, 'ops');
  await ops.setViewportSize({ width: 1920, height: 1080 });
  await sleep(200);
  await shot(ops, 'ops-wall');
  await ops.setViewportSize({ width: 390, height: 844 });
  await sleep(200);
  await ops.screenshot({ path: path.join(ARTIFACTS, 'ops-phone.png'), fullPage: true });
  await ops.setViewportSize({ width: 1440, height: 900 });

  // Every 5 s while visible; nothing while hidden; at once when visible again.
  const setHidden = (h) => ops.evaluate((hidden) => {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => hidden });
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (hidden ? 'hidden' : 'visible') });
    document.dispatchEvent(new Event('visibilitychange'));
  }, h);
  const gaps = statsRequests.slice(1).map((x, i) => x - statsRequests[i]);
  assert.ok(gaps.length >= 2 && gaps.every((g) => g > 4000 && g < 7000), `refresh gaps ${gaps}`);
  await setHidden(true);
  const hiddenAt = Date.now();
  await sleep(6500);
  const whileHidden = statsRequests.filter((x) => x > hiddenAt + 200).length;
  assert.equal(whileHidden, 0, 'asked for stats while hidden');
  const visibleAt = Date.now();
  await setHidden(false);
  await sleep(800);
  const resumed = statsRequests.filter((x) => x >= visibleAt).length;
  assert.ok(resumed >= 1, 'a refresh as soon as the tab is visible');

  // A coordinator is told, by the server's 403, that this is for admins.
  const desk = await open(ctx, server.url, 'ops', server.token('coordinator'));
  const denied = desk.locator('[data-error="forbidden"]');
  await denied.waitFor({ timeout: 10000 });
  assert.match(await denied.innerText(), /operations stats are for admins/i);
  assert.equal(await desk.locator('[data-tile]').count(), 0);
  await shot(desk, 'ops-forbidden');
  await desk.close();

  // The server goes away: the page says so and keeps the last figures, greyed.
  await server.stop();
  const lost = Date.now();
  await ops.locator('[data-alert][data-error="network"]').waitFor({ timeout: 8000 });
  const noticeMs = Date.now() - lost;
  assert.match(await ops.locator('[data-alert]').innerText(), /Cannot reach the server/);
  assert.ok(await ops.locator('[data-stats].ops-stale [data-tile="streams"]').count() === 1);
  await shot(ops, 'ops-offline');
  console.log(`# ops: refresh gaps ${gaps.join(', ')} ms; 0 requests in 6.5 s hidden; network notice after ${noticeMs} ms`);
  await ops.close();
});
