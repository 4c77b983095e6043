// Helpers of the browser tests: a real server process per test, tokens
// signed with the test's secret, demo data through the REST API, Debian's
// Chromium through playwright-core, nginx, and a counting proxy.
import { spawn, spawnSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, mkdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ARTIFACTS = path.join(here, 'artifacts');
export const TENANT = 'e2e-clinic';
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const NGINX = process.env.NGINX || '/usr/sbin/nginx';
const CI = process.env.CI === 'true' || process.env.CI === '1';

/** need fails (under CI) or skips a test when a tool is missing. */
export function need(t, file, what) {
  if (existsSync(file)) return true;
  if (CI) throw new Error(`${what} is required under CI but ${file} is missing (apt-get install ${what})`);
  t.skip(`${what} not installed (${file})`);
  return false;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function tmpdir(prefix = 'cp-e2e-') {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
    s.on('error', reject);
  });
}

// ------------------------------------------------------------------ tokens

const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** sign returns an HS256 JWT with sub, tenant_id, role and exp. */
export function sign(secret, { sub, role, tenant = TENANT, ttl = 3600 }) {
  const head = b64({ alg: 'HS256', typ: 'JWT' });
  const body = b64({ sub, tenant_id: tenant, role, iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + ttl });
  const mac = createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${mac}`;
}

// ------------------------------------------------------------------ server

/**
 * Server runs the clinicpulse binary (CLINICPULSE_BIN) on a loopback port
 * and a SQLite file; restart() stops and starts it on the same port and DB.
 */
export class Server {
  constructor({ env = {}, port, dir } = {}) {
    this.dir = dir || tmpdir();
    this.secret = randomBytes(24).toString('hex');
    this.port = port;
    this.env = env;
    this.log = [];
  }

  get url() { return `http://127.0.0.1:${this.port}`; }

  async start() {
    const bin = process.env.CLINICPULSE_BIN;
    if (!bin || !existsSync(bin)) throw new Error('CLINICPULSE_BIN must name the built server (see e2e/run.sh)');
    this.port ||= await freePort();
    this.proc = spawn(bin, [], {
      env: {
        PATH: process.env.PATH, HOME: process.env.HOME, TZ: process.env.TZ || 'UTC',
        JWT_SECRET: this.secret, DATABASE_URL: `sqlite:${path.join(this.dir, 'db')}`, ADDR: `127.0.0.1:${this.port}`,
        CLINIC_TIMEZONE: 'UTC', ...this.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const keep = (b) => { this.log.push(b.toString()); if (this.log.length > 400) this.log.shift(); };
    this.proc.stdout.on('data', keep);
    this.proc.stderr.on('data', keep);
    const exited = new Promise((r) => this.proc.once('exit', (code) => r(code)));
    this.exited = exited;
    for (let i = 0; i < 200; i++) {
      try {
        const res = await fetch(`${this.url}/healthz`);
        if (res.ok) return this;
      } catch { /* not yet */ }
      const done = await Promise.race([exited, sleep(50).then(() => undefined)]);
      if (done !== undefined) throw new Error(`server exited (${done}):\n${this.log.join('')}`);
    }
    throw new Error(`server did not start:\n${this.log.join('')}`);
  }

  /** stop ends the process (SIGKILL: an abrupt loss, like a crash). */
  async stop(signal = 'SIGKILL') {
    if (!this.proc || this.proc.exitCode !== null) return;
    this.proc.kill(signal);
    await this.exited;
  }

  async restart() {
    await this.stop();
    await this.start();
  }

  token(role, sub) { return sign(this.secret, { role, sub: sub || `${role}-1` }); }

  /** api calls the REST API as an admin (or with token) and returns JSON. */
  async api(method, p, body, { token, headers = {} } = {}) {
    const res = await fetch(this.url + p, {
      method,
      headers: { Authorization: `Bearer ${token || this.token('admin')}`, 'Content-Type': 'application/json', ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    const data = text ? JSON.parse(text) : null;
    if (!res.ok) throw Object.assign(new Error(`${method} ${p}: ${res.status} ${text}`), { status: res.status, data });
    return data;
  }

  async cleanup() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** seed fills the tenant: 3 doctors, 12 patients, 9 appointments, 5 checked in, 3 walk-ins. */
export async function seed(server) {
  const doctors = [];
  for (const d of [
    { name: 'Dr. Amara Okafor', specialty: 'General practice', room: '1' },
    { name: 'Dr. Lukas Berg', specialty: 'Paediatrics', room: '2' },
    { name: 'Dr. Priya Raman', specialty: 'Dermatology', room: '3' },
  ]) doctors.push(await server.api('POST', '/api/v1/doctors', d));
  const names = ['Maria Silva', 'James Chen', 'Fatima Noor', 'Oliver Smith', 'Aiko Tanaka', 'Kwame Mensah',
    'Sofia Rossi', "Liam O'Brien", 'Nadia Haddad', 'Ethan Brown', 'Chloé Martin', 'Ravi Patel'];
  const patients = [];
  for (const [i, name] of names.entries()) {
    patients.push(await server.api('POST', '/api/v1/patients', {
      name, date_of_birth: `${1950 + i * 4}-${String((i % 12) + 1).padStart(2, '0')}-${String(i * 2 + 1).padStart(2, '0')}`,
      phone: `+1 555 01${String(i).padStart(2, '0')}`, mrn: `MRN-${1001 + i}`,
    }));
  }
  const day = new Date().toISOString().slice(0, 10);
  const appts = [];
  // From the next ten-minute mark: a booking may not start in the past.
  const first = Math.ceil((Date.now() + 1) / 600000) * 600000;
  for (let i = 0; i < 9; i++) {
    const start = new Date(first + i * 20 * 60000);
    const end = new Date(start.getTime() + 20 * 60000);
    appts.push(await server.api('POST', '/api/v1/appointments', {
      patient_id: patients[i].id, doctor_id: doctors[i % 3].id, starts_at: start.toISOString(), ends_at: end.toISOString(),
      reason: ['Follow-up', 'Annual check-up', 'Rash', 'Fever', 'Vaccination'][i % 5],
    }));
  }
  for (const a of appts.slice(0, 5)) await server.api('PATCH', `/api/v1/appointments/${a.id}`, { status: 'checked_in' });
  for (const [i, p] of patients.slice(9).entries()) {
    await server.api('POST', '/api/v1/queue', { patient_id: p.id, doctor_id: doctors[i % 3].id, priority: i === 0 ? 'urgent' : 'normal' });
  }
  return { doctors, patients, appts, day };
}

/** head returns the tenant's log head. */
export async function head(server) {
  return (await server.api('GET', '/api/v1/patients?limit=1')).cursor;
}

/** events reads the admin's view of the log after since. */
export async function events(server, since, topics) {
  let out = [];
  let c = since;
  for (;;) {
    const page = await server.api('GET', `/api/v1/events?since=${c}&limit=1000${topics ? `&topics=${topics}` : ''}`);
    out = out.concat(page.events);
    c = page.cursor;
    if (!page.has_more) return out;
  }
}

// ------------------------------------------------------------------ browser

/** browser launches Debian's Chromium with a fresh profile; returns the context. */
export async function browser({ viewport = { width: 1440, height: 900 } } = {}) {
  const { chromium } = await import('playwright-core');
  const dir = tmpdir('cp-chromium-');
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-renderer-backgrounding', '--disable-background-timer-throttling',
      '--disable-backgrounding-occluded-windows'],
  });
  const close = ctx.close.bind(ctx);
  ctx.close = async () => { await close().catch(() => {}); rmSync(dir, { recursive: true, force: true }); };
  ctx.on('weberror', (e) => console.error('page error:', e.error().message));
  return ctx;
}

/** open opens a dashboard page signed in with token. */
export async function open(ctx, base, page, token, { hb } = {}) {
  const p = await ctx.newPage();
  p.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') console.error(`[${page}] ${m.text()}`); });
  await p.goto(`${base}/static/${page}.html#token=${token}${hb ? `&hb=${hb}` : ''}`);
  return p;
}

/** badge waits until the page's badge shows state. */
export async function badge(page, state, timeout = 30000) {
  await page.locator(`.cp-badge[data-state="${state}"]`).first().waitFor({ timeout });
}

export async function shot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) });
}

/** delivered collects the seqs the page's connection delivers (from now on). */
export async function trackSeqs(page) {
  await page.waitForFunction(() => globalThis.clinicpulse?.conn);
  await page.evaluate(() => {
    globalThis.__seqs = [];
    globalThis.clinicpulse.conn.addEventListener('event', (e) => globalThis.__seqs.push(e.detail.seq));
  });
}

export const seqsOf = (page) => page.evaluate(() => globalThis.__seqs);

// ------------------------------------------------------------------ nginx

/**
 * docBlock returns the text of the fenced block of docs/<doc> whose info
 * string is "<lang> name=<name>" (as internal/doctest reads it), so that a
 * configuration the documents show is the one a test runs.
 */
export function docBlock(doc, lang, name) {
  const text = readFileSync(path.join(here, '..', 'docs', doc), 'utf8');
  const found = [];
  const re = /^(`{3,})(.*)\n([\s\S]*?)^\1`*[ \t]*$/gm;
  for (let m; (m = re.exec(text));) {
    const [l, ...attrs] = m[2].trim().split(/\s+/);
    if (l === lang && attrs.includes(`name=${name}`)) found.push(m[3]);
  }
  if (found.length !== 1) throw new Error(`docs/${doc}: ${found.length} \`\`\`${lang} name=${name} blocks, want 1`);
  return found[0];
}

/**
 * startNginx runs nginx in front of upstream with serverConf, a
 * configuration of docs/deploy.md (what goes in nginx's http {} context,
 * see docBlock), localized as internal/doctest.Localize does: its listen
 * directive listens on a free loopback port and a proxy_pass to a literal
 * address goes to upstream. Returns {url, stop, accessLog}.
 */
export async function startNginx(upstream, serverConf) {
  const dir = tmpdir('cp-nginx-');
  const port = await freePort();
  for (const d of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(path.join(dir, d), { recursive: true });
  if (!/^\s*listen\s+[^;]+;/m.test(serverConf)) throw new Error('the nginx configuration has no listen directive');
  const local = serverConf
    .replace(/^(\s*)listen\s+[^;]+;/gm, `$1listen 127.0.0.1:${port};`)
    .replace(/proxy_pass\s+http:\/\/[0-9.]+:\d+/g, `proxy_pass ${upstream.replace(/\/$/, '')}`);
  const conf = `
worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
${process.getuid?.() === 0 ? 'user root;' : ''}
events { worker_connections 256; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
${local}
}`;
  writeFileSync(path.join(dir, 'nginx.conf'), conf);
  const check = spawnSync(NGINX, ['-t', '-p', dir, '-c', path.join(dir, 'nginx.conf')], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`nginx -t failed:\n${check.stderr}`);
  const proc = spawn(NGINX, ['-p', dir, '-c', path.join(dir, 'nginx.conf')], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try { await fetch(`${url}/healthz`); break; } catch { await sleep(50); }
  }
  return {
    url, dir, accessLog: path.join(dir, 'access.log'),
    async stop() {
      proc.kill('SIGQUIT');
      await new Promise((r) => { if (proc.exitCode !== null) r(); else proc.once('exit', r); });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ------------------------------------------------------------------ counting proxy

/**
 * countingProxy forwards to upstream and counts requests to /api/v1/stream:
 * total opened and currently open.
 */
export async function countingProxy(upstream) {
  const u = new URL(upstream);
  const stats = { streamsOpened: 0, streamsOpen: 0, maxOpen: 0 };
  const srv = http.createServer((req, res) => {
    const isStream = req.url.startsWith('/api/v1/stream?') || req.url === '/api/v1/stream';
    if (isStream) {
      stats.streamsOpened++; stats.streamsOpen++; stats.maxOpen = Math.max(stats.maxOpen, stats.streamsOpen);
      res.on('close', () => { stats.streamsOpen--; });
    }
    const up = http.request({ host: u.hostname, port: u.port, path: req.url, method: req.method, headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => { if (!res.headersSent) res.writeHead(502); res.end(); });
    res.on('close', () => up.destroy());
    req.pipe(up);
  });
  const port = await freePort();
  await new Promise((r) => srv.listen(port, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${port}`, stats, close: () => new Promise((r) => { srv.closeAllConnections(); srv.close(r); }) };
}
