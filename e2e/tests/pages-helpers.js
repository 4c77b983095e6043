// Helpers of the pages-*.test.js and screens-*.test.js browser tests (not a
// test file itself): one Chromium with a browser context per dashboard (each
// context has its own connection pool, as separate devices would, so five
// live pages do not share the browser's six connections per host), console
// and page errors collected per page, axe-core run in the page, keyboard
// reach and "nothing covers a control" measured in the page.
import { readFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { CHROMIUM, ARTIFACTS } from '../lib.js';

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/** launch starts Debian's Chromium; close it with .close(). */
export async function launch() {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-renderer-backgrounding', '--disable-background-timer-throttling',
      '--disable-backgrounding-occluded-windows'],
  });
}

/**
 * dashboard opens a dashboard in a context of its own and collects its
 * console errors and page errors in page.problems (warnings in
 * page.warnings). name is the page (frontdesk, doctor, …, index).
 */
export async function dashboard(browser, base, name, token, { viewport = { width: 1366, height: 768 }, locale, query = '' } = {}) {
  const ctx = await browser.newContext({ viewport, locale });
  const page = await ctx.newPage();
  page.problems = [];
  page.warnings = [];
  page.on('console', (m) => {
    // Chromium logs every 4xx answer as "Failed to load resource". A 409 or
    // 412 is the server refusing a change a colleague's change overtook —
    // normal use with another desk busy, which the page answers by showing
    // the newest version (frontdesk-refusals tests each kind) — so it is
    // kept apart; any other status, and every other error, is a problem.
    if (m.type() === 'error' && /^Failed to load resource: the server responded with a status of (409|412)\b/.test(m.text())) {
      page.warnings.push(`[${name}] refused: ${m.text()} ${m.location().url}`);
      return;
    }
    if (m.type() === 'error') page.problems.push(`[${name}] console: ${m.text()} ${JSON.stringify(m.location())}`);
    if (m.type() === 'warning') page.warnings.push(`[${name}] ${m.text()}`);
  });
  page.on('pageerror', (e) => page.problems.push(`[${name}] page error: ${e.message}`));
  page.on('requestfailed', (r) => {
    // A request the page itself gave up (navigation, a closed stream) is not an error of the page.
    if (!/ERR_ABORTED/.test(r.failure()?.errorText || '')) page.problems.push(`[${name}] request failed: ${r.url()} ${r.failure()?.errorText}`);
  });
  const file = name === 'index' ? 'index' : name;
  await page.goto(`${base}/static/${file}.html${query}${token ? `#token=${token}` : ''}`);
  page.closeAll = () => ctx.close();
  return page;
}

/**
 * axe runs axe-core 4.14 in the page (evaluated through the DevTools
 * protocol, which the page's Content-Security-Policy does not cover) and
 * returns the serious and critical violations as
 * [{id, impact, help, nodes: [selector…]}].
 */
export async function axe(page) {
  await page.evaluate(AXE);
  const res = await page.evaluate(() => globalThis.axe.run(document, { resultTypes: ['violations'] }));
  return res.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => `${n.target.join(' ')} — ${n.failureSummary?.split('\n').slice(1, 2).join('')}`) }));
}

/**
 * keyboardReach presses Tab through the page (up to limit times) and
 * returns the visible, enabled controls (buttons, links, fields) that Tab
 * never reached, as short descriptions.
 */
export async function keyboardReach(page, limit = 200) {
  await page.evaluate(() => { document.activeElement?.blur?.(); globalThis.__reached = new Set(); });
  await page.evaluate(() => {
    document.addEventListener('focusin', (e) => globalThis.__reached.add(e.target), true);
  });
  await page.locator('body').click({ position: { x: 1, y: 1 } }).catch(() => {});
  for (let i = 0; i < limit; i++) await page.keyboard.press('Tab');
  return page.evaluate(() => {
    const controls = [...document.querySelectorAll('button, a[href], input, select, textarea, [tabindex]:not([tabindex="-1"])')]
      .filter((e) => !e.disabled && e.getClientRects().length && getComputedStyle(e).visibility !== 'hidden');
    return controls.filter((e) => !globalThis.__reached.has(e))
      .map((e) => `${e.tagName.toLowerCase()}${e.dataset.action ? `[data-action=${e.dataset.action}]` : ''} "${(e.textContent || e.getAttribute('aria-label') || e.name || '').trim().slice(0, 30)}"`);
  });
}

/**
 * covered returns the controls (buttons, links, fields) that a notice
 * (.toast) covers, even in part.
 */
export function covered(page) {
  return page.evaluate(() => {
    const toasts = [...document.querySelectorAll('.toast')].filter((t) => t.getClientRects().length).map((t) => t.getBoundingClientRect());
    const out = [];
    for (const e of document.querySelectorAll('button, a[href], input, select, textarea')) {
      if (!e.getClientRects().length) continue;
      const r = e.getBoundingClientRect();
      for (const t of toasts) {
        if (r.left < t.right && t.left < r.right && r.top < t.bottom && t.top < r.bottom) {
          out.push(`${e.tagName.toLowerCase()} "${(e.textContent || e.getAttribute('aria-label') || '').trim().slice(0, 30)}"`);
        }
      }
    }
    return out;
  });
}

/** screenshot saves e2e/artifacts/<name>.png. */
export async function screenshot(page, name, opts = {}) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), ...opts });
}
