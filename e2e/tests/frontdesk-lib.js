// Helpers of the front-desk browser tests (frontdesk-*.test.js).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { sleep } from '../lib.js';

const require = createRequire(import.meta.url);

/** until polls fn until it returns a truthy value; throws after timeout ms. */
export async function until(what, fn, timeout = 10000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting: ${what}`);
    await sleep(50);
  }
}

/** press holds the mouse on the element's centre for ms, as a person does (not element.click()). */
export async function press(page, locator, ms = 100) {
  // Where the element is now (no waiting for it to be "stable", as a
  // person does not wait): scrolled into view if it is not.
  const box = await locator.evaluate((el) => {
    const r0 = el.getBoundingClientRect();
    if (r0.top < 60 || r0.bottom > innerHeight) el.scrollIntoView({ block: 'center' });
    const r = el.getBoundingClientRect();
    return { x: r.x, y: r.y, width: r.width, height: r.height };
  });
  if (!box.width) throw new Error('press: the element is not visible');
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down();
  await sleep(ms);
  await page.mouse.up();
}

/** quantile of a sorted copy of xs (nearest rank). */
export function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}

/**
 * axe runs axe-core (from node_modules, injected into the page with
 * page.addScriptTag) and answers
 * the serious and critical violations: [{id, impact, help, nodes: [target…]}].
 */
export async function axe(page, context) {
  if (!(await page.evaluate(() => !!globalThis.axe))) {
    // The dashboards' Content-Security-Policy allows scripts from the
    // server only: the test serves axe-core under the page's origin.
    const src = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
    const at = new URL('/__test__/axe.min.js', page.url()).href;
    await page.route(at, (route) => route.fulfill({ contentType: 'text/javascript', body: src }));
    await page.addScriptTag({ url: at });
  }
  const violations = await page.evaluate(async (ctx) => {
    const r = await globalThis.axe.run(ctx || document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((x) => `${x.target.join(' ')}: ${x.failureSummary}`).slice(0, 5) }));
  }, context);
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

/**
 * watchRow records, in the page, every state of the front desk's row
 * selector (its data-status, or null when absent) with Date.now(), on every
 * DOM change: __rows[name] = [[ms, status], …].
 */
export function watchRow(page, name, selector) {
  return page.evaluate(([n, sel]) => {
    globalThis.__rows ||= {};
    const log = (globalThis.__rows[n] = []);
    const note = () => {
      const s = document.querySelector(sel)?.dataset.status ?? null;
      if (!log.length || log[log.length - 1][1] !== s) log.push([Date.now(), s]);
    };
    note();
    new MutationObserver(note).observe(document.body, { subtree: true, childList: true, attributes: true });
  }, [name, selector]);
}

/** writesOf records the page connection's settled writes: __writes = [{at, status, label}]. */
export function watchWrites(page) {
  return page.evaluate(() => {
    globalThis.__writes = [];
    globalThis.clinicpulse.conn.addEventListener('write', (e) => globalThis.__writes.push({ at: Date.now(), status: e.detail.status, label: e.detail.label, path: e.detail.path }));
  });
}

/** addPatients creates n patients named prefix 1..n. */
export async function addPatients(server, n, prefix) {
  const out = [];
  for (let i = 0; i < n; i++) {
    out.push(await server.api('POST', '/api/v1/patients', {
      name: `${prefix} ${String.fromCharCode(65 + (i % 26))}${i}`, date_of_birth: '1980-01-01', phone: `+1 555 9${String(i).padStart(3, '0')}`, mrn: `${prefix.slice(0, 3).toUpperCase()}-${9000 + i}`,
    }));
  }
  return out;
}
