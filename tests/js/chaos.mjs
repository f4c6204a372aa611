// Chaos: SIGKILL and restart the real hub again and again under mixed load, with clients on every transport
// resuming the way their library does, then count what each client got against the log.
//
//   SWITCHBOARD_BIN=$CARGO_TARGET_DIR/release/switchboard node tests/js/chaos.mjs --clients 1000 --cycles 20
//
// Clients (a fifth each). Those marked * follow three channels of --channels and `global` (which every connection is
// in) and keep nothing but the highest seq they saw, so they prove the one order of a resume (SPEC §4): cut off in
// the middle of a replay, they must still miss and repeat nothing. The others follow one channel.
//   ws      the hub's own client (clients/js) over `ws`: reconnects, resumes with since + epoch;
//   raw *   a bare `WebSocket`, written like the README's snippet: `lastSeq = f.seq`, and on close a new socket
//           with `&since=${lastSeq}`;
//   sse *   `eventsource`: reconnects by itself with Last-Event-ID;
//   sio *   `socket.io-client`: reconnects by itself, its channels and `since` in the auth payload;
//   pusher  `pusher-js`: reconnects and resubscribes by itself; the protocol has no resume, so on every
//           subscription_succeeded the app refetches what it missed with GET /api/events?since= (SPEC §7).
// Writers publish events over REST and, one in four, over a WebSocket (--rate a second in all, one in eight on
// `global`, and an agent update for every 20th), each acknowledged when the hub answers 2xx or the publish resolves
// with its seq (the WebSocket publisher sends each again after a drop, with its idempotency key). Every cycle
// the load runs 1–2.5 s, then the hub is SIGKILLed and started again on the same port and data dir. Afterwards
// the harness waits for the clients to catch up, reads the whole log, and counts:
//   gaps           events of a client's channel in the log (after the start) that the client never got;
//   duplicates     events a client got twice (Pusher: twice live; a refetch overlapping live is the app's merge);
//   out of order   events whose seq is not above the one before, over all of a client's channels;
//   lost acked     acknowledged publishes or updates that are not in the log, or are there with other data;
//   log holes      seqs missing between the first and the last (the log is dense).
// It prints a Markdown table and exits 1 unless all of these are zero and the hub logged no ERROR. `--json FILE`
// writes the counts too.
import { spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { EventSource } from 'eventsource';
import { io } from 'socket.io-client';
import Pusher from 'pusher-js';
import { configure, connect } from '../../clients/js/dist/client.js';
import { PUSHER, freePort, sleep } from './hub.mjs';
import { storeArgs } from './store.mjs';

const { values: opt } = parseArgs({
  options: {
    clients: { type: 'string', default: '1000' },
    cycles: { type: 'string', default: '20' },
    channels: { type: 'string', default: '10' },
    rate: { type: 'string', default: '150' },
    writers: { type: 'string', default: '6' },
    settle: { type: 'string', default: '120' },
    json: { type: 'string' },
  },
});
const N = Number(opt.clients);
const CYCLES = Number(opt.cycles);
const CHANNELS = Number(opt.channels);
const RATE = Number(opt.rate);
const WRITERS = Number(opt.writers);
configure({ WebSocket });

// --- the hub: SIGKILLed and restarted on one port and data dir; its log goes to a file, shown on failure.
const dir = mkdtempSync(join(tmpdir(), 'switchboard-chaos-'));
const logPath = join(dir, 'hub.log');
const hubLog = createWriteStream(logPath);
const hub = { port: await freePort(), proc: null, url: null, token: null, starts: 0 };

async function start() {
  const bin = process.env.SWITCHBOARD_BIN;
  if (!bin) throw new Error('SWITCHBOARD_BIN must name the switchboard binary');
  const args = ['serve', '--port', String(hub.port), '--data-dir', dir,
    '--pusher-app-id', PUSHER.appId, '--pusher-key', PUSHER.key, '--pusher-secret', PUSHER.secret,
    ...storeArgs(dir)];
  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: 'warn' } });
  proc.stderr.pipe(hubLog, { end: false });
  const line = await new Promise((resolve, reject) => {
    createInterface({ input: proc.stdout }).once('line', resolve);
    proc.once('exit', (code) => reject(new Error(`hub exited with ${code}; its log: ${logPath}`)));
  });
  hub.proc = proc;
  hub.url = line.match(/^switchboard listening on (http:\/\/\S+)$/)[1];
  hub.token ??= readFileSync(join(dir, 'token'), 'utf8').trim();
  hub.starts++;
}

async function kill() {
  const exited = new Promise((resolve) => hub.proc.once('exit', resolve));
  hub.proc.kill('SIGKILL');
  await exited;
}

/** A REST call as the hub's owner; throws on a network error (the hub is down), returns status and body. */
async function api(method, path, body) {
  const res = await fetch(hub.url + path, {
    method,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${hub.token}` },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** Every event of `channel` (a name or pattern) after `since`, read in pages. */
async function logAfter(channel, since) {
  const out = [];
  for (;;) {
    const q = new URLSearchParams({ since: String(since), limit: '1000' });
    if (channel) q.set('channel', channel);
    const r = await api('GET', `/api/events?${q}`);
    if (r.status !== 200) throw new Error(`GET /api/events: ${r.status} ${JSON.stringify(r.body)}`);
    out.push(...r.body.events);
    if (r.body.events.length === 0) return out;
    since = r.body.events.at(-1).seq;
  }
}

await start();
const channelOf = (i) => `chaos:${i % CHANNELS}`;
const KINDS = ['ws', 'raw', 'sse', 'sio', 'pusher'];
const MULTI = new Set(['raw', 'sse', 'sio']);
const first = await api('GET', '/api/events?limit=1');
const base = first.body.last_seq ?? 0;
const epoch = first.body.epoch;

// --- the clients. Each records what it got: `live` seq → times (Pusher: data key → times), its order faults,
// and how often it (re)connected.
const clients = [];
function record(c, seq) {
  c.live.set(seq, (c.live.get(seq) ?? 0) + 1);
  if (seq <= c.last) c.disorder++;
  c.last = Math.max(c.last, seq);
}

/** A bare WebSocket as the README's snippet writes it: the highest seq seen is all it keeps. */
function raw(c) {
  const wsUrl = hub.url.replace(/^http/, 'ws');
  const q = `channels=${c.channels.join(',')}&since=${c.lastSeq}&token=${hub.token}`;
  const ws = new WebSocket(`${wsUrl}/ws?${q}`);
  c.conn = ws;
  ws.onopen = () => { c.connects++; };
  ws.onmessage = (m) => {
    const f = JSON.parse(m.data);
    if (f.type === 'event') {
      c.lastSeq = f.seq;
      if (c.due(f.channel)) record(c, f.seq);
    }
    if (f.type === 'ack' && f.recovered === false) c.resync = f;
  };
  ws.onerror = () => {};
  ws.onclose = () => { if (!c.stopped) setTimeout(() => raw(c), 200 + Math.random() * 800); };
}

for (let i = 0; i < N; i++) {
  const kind = KINDS[i % KINDS.length];
  const j = Math.floor(i / KINDS.length);
  const channels = MULTI.has(kind) ? [channelOf(j), channelOf(j + 1), channelOf(j + 2)] : [channelOf(j)];
  const c = { kind, channel: channels[0], channels, live: new Map(), last: base, lastSeq: base, disorder: 0, connects: 0 };
  c.due = (ch) => channels.includes(ch) || (MULTI.has(kind) && ch === 'global');
  clients.push(c);
  if (kind === 'raw') raw(c);
  else if (kind === 'ws') {
    c.conn = connect({
      url: hub.url, token: hub.token, channels: [c.channel], since: base, epoch,
      backoff: { base: 200, cap: 2000 },
    });
    c.conn.on('*', (e) => { if (e.channel === c.channel) record(c, e.seq); });
    c.conn.on('state', (s) => { if (s === 'live') c.connects++; });
    c.conn.on('resync', (info) => { c.resync = info; });
  } else if (kind === 'sse') {
    c.conn = new EventSource(`${hub.url}/events?channels=${channels.join(',')}&since=${base}&token=${hub.token}`);
    c.conn.onmessage = (m) => { const e = JSON.parse(m.data); if (c.due(e.channel)) record(c, e.seq); };
    c.conn.onopen = () => { c.connects++; };
  } else if (kind === 'sio') {
    c.conn = io(hub.url, {
      transports: ['websocket'], reconnectionDelay: 200, reconnectionDelayMax: 2000,
      auth: (cb) => cb({ token: hub.token, since: c.last, channels }),
    });
    c.conn.onAny((_name, e) => { if (e?.channel && c.due(e.channel)) record(c, e.seq); });
    c.conn.on('connect', () => { c.connects++; });
  } else {
    // Pusher: live events by their data key; what the refetches returned by seq.
    c.refetched = new Set();
    c.since = base;
    c.subscribed = 0;
    c.conn = new Pusher(PUSHER.key, {
      wsHost: '127.0.0.1', wsPort: hub.port, forceTLS: false, enabledTransports: ['ws'], cluster: 'local',
    });
    const ch = c.conn.subscribe(c.channel.replace(':', ';'));
    ch.bind_global((name, d) => {
      if (name.startsWith('pusher')) return;
      c.live.set(d.k, (c.live.get(d.k) ?? 0) + 1);
    });
    ch.bind('pusher:subscription_succeeded', () => {
      c.subscribed++;
      c.connects++;
      c.refetch = (async () => {
        for (let attempt = 0; ; attempt++) {
          try {
            for (const e of await logAfter(c.channel, c.since)) {
              c.refetched.add(e.seq);
              c.since = Math.max(c.since, e.seq);
            }
            return;
          } catch {
            await sleep(200); // the hub went down under the refetch: the next subscription refetches too
            if (attempt > 50) return;
          }
        }
      })();
    });
  }
}

const connected = () => clients.filter((c) => c.connects > 0).length;
for (const t0 = Date.now(); connected() < N; await sleep(100)) {
  if (Date.now() - t0 > 60_000) throw new Error(`only ${connected()} of ${N} clients connected`);
}
console.log(`${N} clients connected (${N / KINDS.length} each ${KINDS.join(', ')}) on ${CHANNELS} channels`);

// --- the writers: publishes (and every 20th an agent update) at --rate a second in all.
const acked = { events: [], updates: [] };
let unanswered = 0;
let writing = true;
const agents = [];
for (let w = 0; w < WRITERS; w++) {
  const a = await api('POST', '/api/agents', { name: `chaos-${w}` });
  agents.push(a.body.id);
}
// One WebSocket publisher beside REST: a publish in flight when the hub dies rejects (unacknowledged); one made
// while it is down waits for the next connection.
const publisher = connect({ url: hub.url, token: hub.token, channels: [], backoff: { base: 200, cap: 2000 } });
async function writer(w) {
  const interval = (1000 * WRITERS) / RATE;
  for (let n = 0; writing; n++) {
    const t = Date.now();
    try {
      if (n % 20 === 19) {
        const r = await api('PATCH', `/api/agents/${agents[w]}`, { config: { n } });
        if (r.status === 200) acked.updates.push({ agent: agents[w], version: r.body.version, n });
      } else {
        const k = `${w}-${n}`;
        const channel = n % 8 === 5 ? 'global' : channelOf(n * WRITERS + w);
        if (n % 4 === 1) {
          // Over WebSocket: acknowledged when publish() resolves with the committed seq.
          const { seq } = await publisher.publish(channel, 'tick', { k });
          acked.events.push({ seq, k, channel, ws: true });
        } else {
          const r = await api('POST', '/api/events', { channel, event: 'tick', data: { k } });
          if (r.status === 202) acked.events.push({ seq: r.body.seq, k, channel });
        }
      }
    } catch {
      unanswered++; // the hub died under the request: not acknowledged, maybe committed
    }
    await sleep(Math.max(0, interval - (Date.now() - t)));
  }
}
const writers = Array.from({ length: WRITERS }, (_, w) => writer(w));

// --- the chaos: 1–2.5 s of load, SIGKILL, start again.
const cycleLog = [];
for (let cycle = 1; cycle <= CYCLES; cycle++) {
  await sleep(1000 + Math.random() * 1500);
  const t = Date.now();
  await kill();
  await start();
  cycleLog.push(Date.now() - t);
}
await sleep(1500);
writing = false;
await Promise.all(writers);

// --- settle: every client caught up with its channel's end of the log (Pusher: resubscribed after the last
// restart, its refetch done, and the live events since then in).
const log = await logAfter(null, base);
const byChannel = new Map();
for (const e of log) {
  if (!byChannel.has(e.channel)) byChannel.set(e.channel, []);
  byChannel.get(e.channel).push(e);
}
const endOf = (ch) => byChannel.get(ch)?.at(-1)?.seq ?? base;
const dueOf = (c) => [...byChannel.entries()].filter(([ch]) => c.due(ch)).flatMap(([, evs]) => evs);
const caughtUp = (c) => {
  if (c.kind !== 'pusher') return c.last >= Math.max(...[...byChannel.keys()].filter(c.due).map(endOf), base);
  return (byChannel.get(c.channel) ?? []).every((e) => c.live.has(e.data.k) || c.refetched.has(e.seq));
};
const deadline = Date.now() + Number(opt.settle) * 1000;
while (Date.now() < deadline && !clients.every(caughtUp)) await sleep(250);
await Promise.all(clients.filter((c) => c.refetch).map((c) => c.refetch));

// --- count.
const logSeqs = log.map((e) => e.seq);
let holes = 0;
for (let i = 1; i < logSeqs.length; i++) holes += logSeqs[i] - logSeqs[i - 1] - 1;
const bySeq = new Map(log.map((e) => [e.seq, e]));
let lost = 0;
for (const a of acked.events) {
  const e = bySeq.get(a.seq);
  if (!e || e.channel !== a.channel || e.data?.k !== a.k) lost++;
}
const updates = new Set(log.filter((e) => e.event === 'agent.updated').map((e) => `${e.data.id}@${e.data.version}`));
for (const u of acked.updates) if (!updates.has(`${u.agent}@${u.version}`)) lost++;

const rows = new Map(KINDS.map((k) => [k,
  { clients: 0, expected: 0, delivered: 0, gaps: 0, duplicates: 0, disorder: 0, connects: 0 }]));
for (const c of clients) {
  const r = rows.get(c.kind);
  const want = dueOf(c);
  r.clients++;
  r.expected += want.length;
  r.connects += c.connects;
  r.disorder += c.disorder;
  for (const n of c.live.values()) r.duplicates += n - 1;
  for (const e of want) {
    const got = c.kind === 'pusher' ? c.live.has(e.data.k) || c.refetched.has(e.seq) : c.live.has(e.seq);
    if (got) r.delivered++;
    else r.gaps++;
  }
}

const name = { ws: 'WebSocket (switchboard-client)', raw: 'WebSocket (bare, lastSeq only; 3 channels + global)',
  sse: 'SSE (eventsource; 3 channels + global)', sio: 'Socket.IO (socket.io-client; 3 channels + global)',
  pusher: 'Pusher (pusher-js + refetch)' };
const lines = [
  `${CYCLES} SIGKILL/restart cycles (restart ${Math.min(...cycleLog)}–${Math.max(...cycleLog)} ms), ${log.length} events in the log, `
    + `${acked.events.length + acked.updates.length} writes acknowledged (${acked.events.filter((a) => a.ws).length} `
    + `over WebSocket, ${acked.updates.length} agent updates), `
    + `${unanswered} cut off unanswered`,
  '',
  '| transport | clients | connections | events due | delivered | gaps | duplicates | out of order |',
  '|---|---|---|---|---|---|---|---|',
];
let bad = 0;
for (const [k, r] of rows) {
  lines.push(`| ${name[k]} | ${r.clients} | ${r.connects} | ${r.expected} | ${r.delivered} | ${r.gaps} | ${r.duplicates} | ${r.disorder} |`);
  bad += r.gaps + r.duplicates + r.disorder;
}
lines.push('', `| lost acknowledged writes | log holes |`, '|---|---|', `| ${lost} | ${holes} |`);
bad += lost + holes;
console.log(lines.join('\n'));
if (opt.json) {
  writeFileSync(opt.json, JSON.stringify({ cycles: CYCLES, clients: N, events: log.length,
    acked: acked.events.length + acked.updates.length, unanswered, lost, holes,
    transports: Object.fromEntries(rows) }, null, 2));
}

publisher.close();
for (const c of clients) {
  c.stopped = true;
  if (c.kind === 'ws' || c.kind === 'sio' || c.kind === 'raw') c.conn.close();
  else if (c.kind === 'sse') c.conn.close();
  else c.conn.disconnect();
}
const exited = new Promise((resolve) => hub.proc.once('exit', resolve));
hub.proc.kill('SIGTERM');
await exited;
await new Promise((resolve) => hubLog.end(resolve));
// A hub that logged an error across all this (a failed recovery, a write it could not make) fails the run too.
const errors = readFileSync(logPath, 'utf8').split('\n').filter((l) => / ERROR /.test(l));
if (errors.length > 0) console.log(`\nthe hub logged ${errors.length} errors:\n${errors.slice(0, 20).join('\n')}`);
bad += errors.length;
if (bad > 0) {
  console.log(`\nFAIL: ${bad} faults; the hub's log: ${logPath}`);
  for (const c of clients.filter((x) => x.resync)) console.log('resync', c.kind, c.channel, JSON.stringify(c.resync));
  process.exit(1);
}
rmSync(dir, { recursive: true, force: true });
console.log('\nno gap, no duplicate, nothing out of order, no acknowledged write lost');
process.exit(0);
