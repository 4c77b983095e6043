// A shared front-desk machine (issue 10 item 8): the browser outbox belongs
// to one identity — unsent writes (names, phones) are deleted when the token
// is cleared or another identity's token arrives, and are never replayed
// under another identity's token; and the dashboards carry a
// Content-Security-Policy that allows what they load (no violation on any
// page) and nothing else, framing only by the configured origins.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { Server, seed, browser, open, badge, need, CHROMIUM, sleep, freePort } from '../lib.js';

let server; let data; let ctx;

before(async () => {
  server = await new Server().start();
  data = await seed(server);
});

after(async () => {
  await ctx?.close();
  await server?.cleanup();
});

// outboxOf lists the queued writes in the page's IndexedDB (without
// creating the database when it does not exist yet).
const outboxOf = (page) => page.evaluate(async () => {
  if (!(await indexedDB.databases()).some((d) => d.name === 'clinicpulse-outbox')) return [];
  return new Promise((resolve, reject) => {
    const req = indexedDB.open('clinicpulse-outbox');
    req.onerror = () => reject(req.error);
    req.onsuccess = () => {
      const db = req.result;
      if (!db.objectStoreNames.contains('writes')) { db.close(); resolve([]); return; }
      const r = db.transaction('writes').objectStore('writes').getAll();
      r.onsuccess = () => { db.close(); resolve(r.result.map((w) => ({ identity: w.identity, body: w.body }))); };
      r.onerror = () => reject(r.error);
    };
  });
});

async function until(what, fn, timeout = 15000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting: ${what}`);
    await sleep(100);
  }
}

// queue sends a write from the page while the browser is offline: it is
// stored in the outbox.
async function queue(page, name) {
  const r = await page.evaluate((n) => globalThis.clinicpulse.conn.send('POST', '/api/v1/patients',
    { name: n, phone: '+1 555 0199' }, { label: `Register ${n}` }), name);
  assert.equal(r.queued, true, 'the write was queued offline');
  const box = await outboxOf(page);
  assert.equal(box.length, 1);
  assert.equal(box[0].body.name, name);
  return box[0];
}

async function patientNamed(name) {
  const { items } = await server.api('GET', '/api/v1/patients?limit=1000');
  return items.some((p) => p.name === name);
}

test('the outbox is emptied when another identity signs in or the token is cleared; queued writes never replay under another identity', async (t) => {
  if (!need(t, CHROMIUM, 'chromium')) return;
  ctx = await browser();
  const tokA = server.token('coordinator', 'desk-a');
  const tokB = server.token('coordinator', 'desk-b');

  // 1. The token is replaced in place (a new fragment) while a write waits.
  const page = await open(ctx, server.url, 'frontdesk', tokA);
  await badge(page, 'live');
  await page.evaluate(() => {
    globalThis.__identity = [];
    globalThis.clinicpulse.conn.addEventListener('identity', (e) => globalThis.__identity.push(e.detail));
  });
  await ctx.setOffline(true);
  const w = await queue(page, 'Queued Alpha');
  assert.match(w.identity, /\|e2e-clinic\|coordinator\|desk-a$/);
  await page.evaluate((tok) => { location.hash = `#token=${tok}`; }, tokB);
  await ctx.setOffline(false);
  await until('the outbox of desk-a is emptied', async () => (await outboxOf(page)).length === 0);
  // The page stays online under desk-b for two replay periods (5 s each).
  await sleep(11000);
  assert.equal(await patientNamed('Queued Alpha'), false, "desk-a's write was sent with desk-b's token");
  const changes = await until('an identity change', () => page.evaluate(() => globalThis.__identity.length && globalThis.__identity));
  assert.match(changes[0].identity, /\|desk-b$/);
  assert.equal(changes[0].discarded, 1);

  // 2. The token is cleared (signed out) while a write waits.
  await ctx.setOffline(true);
  const w2 = await queue(page, 'Queued Bravo');
  assert.match(w2.identity, /\|desk-b$/);
  await page.evaluate(() => sessionStorage.removeItem('clinicpulse.token'));
  await until('the outbox is emptied after sign-out', async () => (await outboxOf(page)).length === 0);
  await ctx.setOffline(false);
  await page.close();

  // 3. The tab is closed with a write waiting; the next person signs in.
  const p1 = await open(ctx, server.url, 'frontdesk', tokA);
  await badge(p1, 'live');
  await ctx.setOffline(true);
  await queue(p1, 'Queued Charlie');
  await p1.close();
  await ctx.setOffline(false);
  const p2 = await open(ctx, server.url, 'frontdesk', tokB);
  await badge(p2, 'live');
  await until("desk-a's writes are deleted when desk-b signs in", async () => (await outboxOf(p2)).length === 0);
  await sleep(6000);
  for (const n of ['Queued Alpha', 'Queued Bravo', 'Queued Charlie']) {
    assert.equal(await patientNamed(n), false, `${n} reached the server`);
  }

  // The same identity keeps its outbox when its tab closes, and replays
  // it from its next tab.
  await ctx.setOffline(true);
  await queue(p2, 'Queued Delta');
  await p2.close();
  await ctx.setOffline(false);
  const p3 = await open(ctx, server.url, 'frontdesk', tokB);
  await until("desk-b's own write is replayed", () => patientNamed('Queued Delta'));
  assert.deepEqual(await outboxOf(p3), []);
  await p3.close();
});

test('every dashboard loads under its Content-Security-Policy without a violation; other origins cannot frame it', async (t) => {
  if (!need(t, CHROMIUM, 'chromium')) return;
  await ctx?.close();
  ctx = await browser();
  const doctor = data.doctors[0];
  const patient = data.patients[0];
  const pages = [
    ['frontdesk', server.token('coordinator', 'desk-csp')],
    ['doctor', server.token('doctor', doctor.id)],
    ['patient', server.token('patient', patient.id)],
    ['display', server.token('display', 'screen-1')],
    ['ops', server.token('admin', 'ops-1')],
    ['index', null],
  ];
  for (const [name, token] of pages) {
    const page = await ctx.newPage();
    const problems = [];
    // Chromium reports a blocked load or script in the console ("Refused
    // to …, because it violates the following Content Security Policy
    // directive"); a failed fetch (the client's deliberate 410 probe) is not
    // one.
    page.on('console', (m) => { if (/Content Security Policy|Refused to/i.test(m.text())) problems.push(`console: ${m.text()}`); });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    await page.addInitScript(() => {
      globalThis.__csp = [];
      document.addEventListener('securitypolicyviolation', (e) => globalThis.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
    });
    const res = await page.goto(`${server.url}/static/${name}.html${token ? `#token=${token}` : ''}`);
    const h = res.headers();
    assert.match(h['content-security-policy'] || '', /script-src 'self'.*object-src 'none'.*frame-ancestors 'self'$/, `${name}: CSP`);
    assert.match(h['content-security-policy'], /base-uri 'none'/);
    assert.equal(h['x-content-type-options'], 'nosniff', `${name}: nosniff`);
    assert.equal(h['referrer-policy'], 'no-referrer', `${name}: Referrer-Policy`);
    if (token) await badge(page, 'live');
    else await page.locator('.tiles').waitFor();
    await sleep(1500); // a render or two after the first events and polls
    assert.deepEqual(await page.evaluate(() => globalThis.__csp), [], `${name}: CSP violations`);
    assert.deepEqual(problems, [], `${name}: CSP reports or page errors`);
    // The policy is in force: an injected inline script does not run.
    const ran = await page.evaluate(() => {
      const s = document.createElement('script');
      s.textContent = 'globalThis.__inline = true';
      document.body.append(s);
      return globalThis.__inline === true;
    });
    assert.equal(ran, false, `${name}: an inline script ran`);
    await until(`${name}: the inline script is reported`, () => page.evaluate(() => globalThis.__csp.some((v) => v.startsWith('script-src'))));
    await page.close();
  }

  // Framing: another origin (another port) may not (frame-ancestors
  // 'self' by default; EMBED_ORIGINS lists the portals that may).
  const port = await freePort();
  const host = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html' });
    res.end(`<!doctype html><iframe src="${server.url}/static/display.html"></iframe>`);
  });
  await new Promise((r) => host.listen(port, '127.0.0.1', r));
  try {
    const other = await ctx.newPage();
    const refused = [];
    other.on('console', (m) => { if (/frame-ancestors/.test(m.text())) refused.push(m.text()); });
    await other.goto(`http://127.0.0.1:${port}/`);
    await until('the cross-origin frame is refused', () => refused.length > 0);
    const inner = other.frames().find((f) => f !== other.mainFrame());
    const loaded = inner ? await inner.evaluate(() => /ClinicPulse/.test(document.title)).catch(() => false) : false;
    assert.equal(loaded, false, 'another origin framed a dashboard');
    await other.close();
  } finally {
    host.closeAllConnections();
    await new Promise((r) => host.close(r));
  }
});
