// A webhook receiver for ClinicPulse's tests. It verifies every delivery
// with the npm standardwebhooks package (an implementation ClinicPulse did
// not write), deduplicates by webhook-id, and reports one JSON line per
// request on stdout. Standard input takes commands, one JSON per line:
//   {"cmd":"secrets","secrets":["whsec_…"]}   the secrets to verify with
//   {"cmd":"fail","rate":0.2}                 answer 500 to this share of requests (before verifying)
//   {"cmd":"pause","ms":3000}                 stop listening (connections closed) for ms
//   {"cmd":"check","secret":"…","headers":{…},"body":"…"}  verify a message, report {"kind":"check"}
//   {"cmd":"status","code":410}               answer every request with this status
//   {"cmd":"delay","ms":50}                   answer each verified delivery after ms (reported before)
// Usage: node receiver.mjs <port or 0>
import http from 'node:http';
import readline from 'node:readline';
import { Webhook } from 'standardwebhooks';

let verifiers = [];
let failRate = 0;
let fixedStatus = 0;
let delayMs = 0;
const seen = new Set();
let port = Number(process.argv[2] || 0);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

function verify(secret, body, headers) {
  try {
    new Webhook(secret).verify(body, headers);
    return null;
  } catch (e) {
    return String(e && e.message || e);
  }
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    const id = req.headers['webhook-id'] || '';
    if (fixedStatus) {
      res.writeHead(fixedStatus).end();
      out({ kind: 'request', id, status: fixedStatus });
      return;
    }
    if (Math.random() < failRate) {
      res.writeHead(500).end('induced failure');
      out({ kind: 'request', id, status: 500 });
      return;
    }
    let err = 'no secret';
    for (const s of verifiers) {
      err = verify(s, body, req.headers);
      if (!err) break;
    }
    if (err) {
      res.writeHead(400).end('bad signature');
      out({ kind: 'request', id, status: 400, error: err });
      return;
    }
    let event;
    try { event = JSON.parse(body); } catch { event = null; }
    const dup = seen.has(id);
    seen.add(id);
    const answer = () => res.writeHead(204).end();
    if (delayMs) setTimeout(answer, delayMs); else answer();
    out({
      kind: 'delivery', id, dup, seq: event && event.seq, type: event && event.type,
      ua: req.headers['user-agent'], ctype: req.headers['content-type'],
      headers: { 'webhook-id': id, 'webhook-timestamp': req.headers['webhook-timestamp'], 'webhook-signature': req.headers['webhook-signature'] },
      body,
    });
  });
});

server.listen(port, '127.0.0.1', () => {
  port = server.address().port;
  out({ kind: 'listening', port });
});

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const c = JSON.parse(line);
  switch (c.cmd) {
    case 'secrets': verifiers = c.secrets; out({ kind: 'ok', cmd: c.cmd }); break;
    case 'fail': failRate = c.rate; out({ kind: 'ok', cmd: c.cmd }); break;
    case 'delay': delayMs = c.ms; out({ kind: 'ok', cmd: c.cmd }); break;
    case 'status': fixedStatus = c.code; out({ kind: 'ok', cmd: c.cmd }); break;
    case 'pause':
      server.close();
      server.closeAllConnections();
      out({ kind: 'paused' });
      setTimeout(() => server.listen(port, '127.0.0.1', () => out({ kind: 'resumed' })), c.ms);
      break;
    case 'check':
      out({ kind: 'check', error: verify(c.secret, c.body, c.headers) });
      break;
  }
}).on('close', () => process.exit(0));
