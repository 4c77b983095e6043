// Follows a ClinicPulse stream with the npm "eventsource" package (a
// WHATWG-conformant EventSource), as a browser would: one single-use ticket
// per connection (minted through `fetch`, which is where a browser page
// would mint it too), automatic reconnection with Last-Event-ID and the
// server's retry: delay. Prints one JSON line per happening; exits when it
// has seen the event with seq LAST (or after ES_TIMEOUT_MS, default 60 s).
//
//   node client.mjs STREAM_URL API_BASE TOKEN LAST [bearer|ticket]
import { EventSource } from 'eventsource';

const [, , streamURL, apiBase, token, lastArg, mode = 'ticket'] = process.argv;
const last = Number(lastArg);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

let connections = 0;
const es = new EventSource(streamURL, {
  fetch: async (input, init) => {
    connections++;
    const url = new URL(input);
    const headers = { ...init.headers };
    if (mode === 'ticket') {
      const r = await fetch(apiBase + '/api/v1/stream/tickets', {
        method: 'POST',
        headers: { Authorization: 'Bearer ' + token },
      });
      if (r.status !== 201) throw new Error('ticket: ' + r.status);
      url.searchParams.set('ticket', (await r.json()).ticket);
    } else {
      headers.Authorization = 'Bearer ' + token;
    }
    out({ kind: 'connect', n: connections, lastEventId: headers['Last-Event-ID'] ?? null });
    return fetch(url, { ...init, headers });
  },
});

const onEvent = (e) => {
  const env = JSON.parse(e.data);
  out({ kind: 'event', id: e.lastEventId, type: e.type, seq: env.seq ?? null });
  if (env.seq === last) {
    out({ kind: 'done', connections });
    es.close();
    process.exit(0);
  }
};
for (const type of ['doctors.created', 'reset']) es.addEventListener(type, onEvent);
es.onmessage = onEvent; // an event without a type would land here
es.onerror = (e) => out({ kind: 'error', message: String(e.message ?? ''), code: e.code ?? null, readyState: es.readyState });
setTimeout(() => {
  out({ kind: 'timeout' });
  process.exit(2);
}, Number(process.env.ES_TIMEOUT_MS) || 60_000);
