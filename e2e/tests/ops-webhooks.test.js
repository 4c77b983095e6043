// The operations page's Webhooks panel in a real browser (issue 15). The
// test runs four receivers on loopback (the server may call them:
// WEBHOOK_ALLOW_HTTP_HOSTS=127.0.0.1): one answers 204, one 204 after 2 s
// (it falls behind), one 500 (it retries), one 410 Gone (the server disables
// it at once). The page shows one row per subscription — the URL's host
// only, never its path or query —, its state, lag, failures and disabled
// reason, and the instance's pending, retrying, largest lag and attempts by
// result, which agree with GET /api/v1/webhooks/stats and with what the
// receivers got. Rows are updated in place (patch(), keyed by id): a row
// whose numbers change, a new subscription and a deletion leave the other
// rows' DOM nodes where they were. No console error, no page error, and
// axe-core finds no serious or critical violation. Screenshot at 1366×768:
// e2e/artifacts/ops-webhooks.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { Server, need, CHROMIUM, sleep, badge } from '../lib.js';
import { launch, dashboard, axe, screenshot } from './pages-helpers.js';

let server; let browser; let page;
const receivers = [];

// receiver answers every request with status, after delayMs, and keeps the
// deliveries it got: webhook-id and the event's seq and type.
async function receiver(status, delayMs = 0) {
  const got = [];
  const srv = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c)).on('end', () => {
      const id = req.headers['webhook-id'];
      if (id) {
        const ev = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        got.push({ id, seq: ev.seq, type: ev.type });
      }
      setTimeout(() => res.writeHead(status).end(), delayMs);
    });
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const r = { url: `http://127.0.0.1:${srv.address().port}`, got, close: () => new Promise((d) => { srv.closeAllConnections(); srv.close(d); }) };
  receivers.push(r);
  return r;
}

before(async () => {
  server = await new Server({
    env: {
      WEBHOOK_ALLOW_HTTP_HOSTS: '127.0.0.1',
      // Retries about every second, and no disabling by count: the failing
      // subscription stays "retrying" with a rising count while the test looks.
      WEBHOOK_BACKOFF_MIN: '500ms', WEBHOOK_BACKOFF_MAX: '2s', WEBHOOK_MAX_FAILURES: '1000',
    },
  }).start();
});

after(async () => {
  await page?.closeAll().catch(() => {});
  await browser?.close();
  await server?.cleanup();
  for (const r of receivers) await r.close();
});

const SECRET_PATH = '/hooks/clinic?key=do-not-show-this';

async function subscribe(r, topics) {
  const wh = await server.api('POST', '/api/v1/webhooks', { url: r.url + SECRET_PATH, ...(topics ? { topics } : {}) });
  assert.match(wh.secret, /^whsec_/);
  return wh.id;
}

// row reads a subscription's row as the page shows it.
const row = (id) => page.evaluate((key) => {
  const tr = document.querySelector(`[data-wh-rows] tr[data-key="${key}"]`);
  if (!tr) return null;
  return {
    host: tr.querySelector('[data-wh-host]').textContent, state: tr.dataset.state,
    stateText: tr.querySelector('[data-wh-state]').textContent, lag: Number(tr.querySelector('[data-wh-lag]').dataset.num),
    failures: Number(tr.querySelector('[data-wh-failures]').dataset.num), detail: tr.querySelector('[data-wh-detail]').textContent.trim(),
  };
}, id);

// waitRow waits until the row shows state (if given), a lag above lagAbove
// and failures above failuresAbove (if given).
const waitRow = (id, { state, lagAbove, failuresAbove }, timeout = 20000) => page.waitForFunction(([key, want]) => {
  const tr = document.querySelector(`[data-wh-rows] tr[data-key="${key}"]`);
  const num = (sel) => Number(tr.querySelector(sel).dataset.num);
  return !!tr && (want.state == null || tr.dataset.state === want.state)
    && (want.lagAbove == null || num('[data-wh-lag]') > want.lagAbove)
    && (want.failuresAbove == null || num('[data-wh-failures]') > want.failuresAbove);
}, [id, { state, lagAbove, failuresAbove }], { timeout, polling: 200 });

test('operations: the Webhooks panel from real deliveries to loopback receivers, updated in place', async (t) => {
  if (!need(t, CHROMIUM, 'chromium')) return;
  const ok = await receiver(204);
  const slow = await receiver(204, 2000);
  const failing = await receiver(500);
  const gone = await receiver(410);
  const okID = await subscribe(ok);
  const failingID = await subscribe(failing, ['doctors']);
  const goneID = await subscribe(gone, ['doctors']);
  const slowID = await subscribe(slow, ['doctors']);

  browser = await launch();
  page = await dashboard(browser, server.url, 'ops', server.token('admin', 'ops-1'));
  await badge(page, 'live');
  await page.locator(`[data-wh-rows] tr[data-key="${slowID}"]`).waitFor({ timeout: 10000 });
  assert.equal(await page.locator('[data-wh-rows] tr').count(), 4);
  // The rows as first drawn: later answers must update these nodes.
  await page.evaluate(() => { globalThis.__rows = Object.fromEntries([...document.querySelectorAll('[data-wh-rows] tr')].map((tr) => [tr.dataset.key, tr])); });

  // Six writes: the slow receiver falls behind (2 s each), the failing one
  // retries, the gone one is disabled at its first delivery.
  for (let i = 0; i < 6; i++) await server.api('POST', '/api/v1/doctors', { name: `Dr. Hook ${i}`, room: String(20 + i) });
  const wrote = Date.now();
  await waitRow(slowID, { state: 'delivering', lagAbove: 0 });
  await waitRow(goneID, { state: 'disabled' });
  await waitRow(failingID, { state: 'retrying' });
  await waitRow(okID, { state: 'idle' });
  const seenMs = Date.now() - wrote;

  const host = (r) => new URL(r.url).host;
  const rows = { ok: await row(okID), slow: await row(slowID), failing: await row(failingID), gone: await row(goneID) };
  console.log('# webhooks rows:', JSON.stringify(rows), `all four states within ${seenMs} ms`);
  assert.deepEqual({ host: rows.ok.host, state: rows.ok.stateText, lag: rows.ok.lag, failures: rows.ok.failures, detail: rows.ok.detail },
    { host: host(ok), state: 'Up to date', lag: 0, failures: 0, detail: 'Every event delivered' });
  assert.equal(rows.slow.host, host(slow));
  assert.equal(rows.slow.stateText, 'Delivering');
  assert.equal(rows.gone.stateText, 'Disabled');
  assert.equal(rows.gone.detail, 'the receiver answered 410 Gone');
  assert.equal(rows.failing.stateText, 'Retrying');
  assert.ok(rows.failing.failures >= 1, `failures ${rows.failing.failures}`);
  assert.match(rows.failing.detail, /^Next attempt at \d|^Waiting to retry$/);
  // The host and nothing else of the URL.
  const text = await page.locator('[data-webhooks]').innerText();
  assert.ok(!text.includes('do-not-show-this') && !text.includes('/hooks/clinic'), 'a URL path or query on the page');
  await page.locator('[data-webhooks]').scrollIntoViewIfNeeded();
  await screenshot(page, 'ops-webhooks');

  // The instance's figures, against the API read just after.
  await page.waitForFunction(() => Number(document.querySelector('[data-wh-figure="retrying"]')?.dataset.num) >= 1, null, { timeout: 10000 });
  const shown = await page.evaluate(() => Object.fromEntries([
    ...[...document.querySelectorAll('[data-wh-figure]')].map((e) => [e.dataset.whFigure, Number(e.dataset.num)]),
    ...[...document.querySelectorAll('[data-result]')].map((e) => [e.dataset.result, Number(e.dataset.num)]),
  ]));
  const api = await server.api('GET', '/api/v1/webhooks/stats');
  console.log('# webhooks figures:', JSON.stringify(shown), 'API:', JSON.stringify(api.instance));
  assert.ok(shown.success >= 1 && shown.success <= (api.instance.results.success || 0), `success ${shown.success} vs API ${api.instance.results.success}`);
  assert.ok(shown.http_error >= 2 && shown.http_error <= api.instance.results.http_error, `http_error ${shown.http_error}`);
  assert.equal(shown.refused + shown.timeout + shown.network + shown.skipped, 0);
  assert.ok(shown.success <= ok.got.length + slow.got.length, `success ${shown.success}, received ${ok.got.length}+${slow.got.length}`);

  // The slow one catches up; every receiver that answered 2xx got its events once, in seq order.
  await waitRow(slowID, { state: 'idle' }, 30000);
  const seqs = (r) => r.got.map((d) => d.seq);
  assert.deepEqual(slow.got.map((d) => d.type), Array(6).fill('doctors.created'));
  for (const r of [ok, slow]) {
    assert.deepEqual(seqs(r), [...seqs(r)].sort((a, b) => a - b), 'in seq order');
    assert.equal(new Set(r.got.map((d) => d.id)).size, r.got.length, 'each webhook-id once');
  }
  assert.equal(gone.got.length, 1, 'the 410 receiver got one delivery');

  // Keyed updates: the failing row's count rises, a subscription is added
  // and one deleted; the rows that stay are the nodes first drawn.
  const before = (await row(failingID)).failures;
  const added = await subscribe(ok, ['patients']);
  await server.api('DELETE', `/api/v1/webhooks/${goneID}`);
  await page.locator(`[data-wh-rows] tr[data-key="${added}"]`).waitFor({ timeout: 10000 });
  await page.locator(`[data-wh-rows] tr[data-key="${goneID}"]`).waitFor({ state: 'detached', timeout: 10000 });
  await waitRow(failingID, { failuresAbove: before }, 15000);
  const kept = await page.evaluate((ids) => ids.map((id) => globalThis.__rows[id] === document.querySelector(`[data-wh-rows] tr[data-key="${id}"]`)), [okID, slowID, failingID]);
  assert.deepEqual(kept, [true, true, true], 'rows rebuilt instead of updated');
  assert.deepEqual(await page.locator('[data-wh-rows] tr').evaluateAll((trs) => trs.map((tr) => tr.dataset.key)), [okID, failingID, slowID, added]);

  const violations = await axe(page);
  assert.deepEqual(violations, [], JSON.stringify(violations, null, 1));
  await sleep(300);
  assert.deepEqual(page.problems, []);
});
