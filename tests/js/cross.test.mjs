// One hub, one log: an event published on any transport reaches subscribers on every transport, with the same
// seq. Publishers: REST, MCP (the official TypeScript client), WebSocket, Socket.IO (client emit), Pusher (a
// client event from pusher-js, and the HTTP API through the `pusher` SDK). Subscribers: WebSocket, SSE,
// Socket.IO, Pusher (pusher-js, and the raw protocol, whose frames carry seq) and an MCP resource subscription.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { EventSource } from 'eventsource';
import Pusher from 'pusher-js';
import PusherServer from 'pusher';
import WebSocket from 'ws';
import { io } from 'socket.io-client';
import { ResourceUpdatedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { Hub, PUSHER, until } from './hub.mjs';

let hub;
before(async () => { hub = await new Hub().start(); });
after(async () => { await hub.stop(); });

const CHANNEL = 'private-cross';

test('an event from each transport reaches every transport with the same seq', { timeout: 30_000 }, async () => {
  const wsUrl = hub.url.replace('http', 'ws');
  const seen = { ws: new Map(), sse: new Map(), socketio: new Map(), pusher: new Map(), mcp: new Map() };
  const mark = (who, n, seq) => { if (n !== undefined) seen[who].set(n, seq); };
  const closers = [];

  // --- subscribers
  const ws = new WebSocket(`${wsUrl}/ws?channels=${CHANNEL}&token=${hub.token}`);
  ws.on('message', (m) => { const f = JSON.parse(m.toString()); if (f.type === 'event') mark('ws', f.data?.n, f.seq); });
  await new Promise((resolve) => ws.once('open', resolve));
  closers.push(() => ws.close());

  const es = new EventSource(`${hub.url}/events?channels=${CHANNEL}&token=${hub.token}`);
  es.onmessage = (m) => { const e = JSON.parse(m.data); mark('sse', e.data?.n, e.seq); };
  await new Promise((resolve, reject) => { es.onopen = resolve; es.onerror = reject; });
  closers.push(() => es.close());

  const sio = io(hub.url, { transports: ['websocket'], auth: { token: hub.token, channels: [CHANNEL] } });
  sio.onAny((_name, e) => mark('socketio', e?.data?.n, e?.seq));
  await new Promise((resolve) => sio.once('connect', resolve));
  closers.push(() => sio.close());

  const pjs = new Pusher(PUSHER.key, hub.pusherOptions());
  closers.push(() => pjs.disconnect());
  const pch = pjs.subscribe(CHANNEL);
  await new Promise((resolve) => pch.bind('pusher:subscription_succeeded', resolve));
  const pjsGot = [];
  pch.bind_global((name, d) => { if (!name.startsWith('pusher')) pjsGot.push(d.n); });

  const raw = new WebSocket(`${wsUrl}/app/${PUSHER.key}?protocol=7`);
  closers.push(() => raw.close());
  const rawFrames = [];
  raw.on('message', (m) => rawFrames.push(JSON.parse(m.toString())));
  await until(() => rawFrames.find((f) => f.event === 'pusher:connection_established'), 3000, 'raw established');
  const socketId = JSON.parse(rawFrames[0].data).socket_id;
  const auth = await fetch(`${hub.url}/pusher/auth`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Bearer ${hub.token}` },
    body: new URLSearchParams({ socket_id: socketId, channel_name: CHANNEL }),
  }).then((r) => r.json());
  raw.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: CHANNEL, auth: auth.auth } }));
  await until(() => rawFrames.find((f) => f.event === 'pusher_internal:subscription_succeeded'), 3000, 'raw subscribed');
  raw.on('message', (m) => { const f = JSON.parse(m.toString()); if (f.channel === CHANNEL && f.seq) mark('pusher', JSON.parse(f.data).n, f.seq); });

  const mcp = await hub.mcp();
  closers.push(() => mcp.close());
  mcp.setNotificationHandler(ResourceUpdatedNotificationSchema, async () => {
    const r = await mcp.readResource({ uri: 'switchboard://events' });
    for (const e of JSON.parse(r.contents[0].text).events) if (e.channel === CHANNEL) mark('mcp', e.data?.n, e.seq);
  });
  await mcp.subscribeResource({ uri: 'switchboard://events' });

  // --- publishers, one event each, told apart by data.n
  const published = new Map();
  const rest = await hub.api('POST', '/api/events', { channel: CHANNEL, event: 'cross', data: { n: 'rest' } }, { token: true });
  published.set('rest', rest.body.seq);

  const byMcp = await mcp.callTool({ name: 'publish_event', arguments: { channel: CHANNEL, event: 'cross', data: { n: 'mcp' } } });
  published.set('mcp', byMcp.structuredContent.seq);

  const acked = new Promise((resolve) => ws.on('message', (m) => { const f = JSON.parse(m.toString()); if (f.id === 'w1') resolve(f); }));
  ws.send(JSON.stringify({ type: 'publish', id: 'w1', channel: CHANNEL, event: 'cross', data: { n: 'ws' } }));
  published.set('ws', (await acked).seq);

  const sioAck = await sio.emitWithAck('publish', { channel: CHANNEL, event: 'cross', data: { n: 'socketio' } });
  published.set('socketio', sioAck.seq);

  const sender = new Pusher(PUSHER.key, hub.pusherOptions());
  closers.push(() => sender.disconnect());
  const sch = sender.subscribe(CHANNEL);
  await new Promise((resolve) => sch.bind('pusher:subscription_succeeded', resolve));
  sch.trigger('client-cross', { n: 'pusher-client' });

  const sdk = new PusherServer({ appId: PUSHER.appId, key: PUSHER.key, secret: PUSHER.secret, host: '127.0.0.1', port: String(hub.port), useTLS: false });
  assert.equal((await sdk.trigger(CHANNEL, 'cross', { n: 'pusher-api' })).status, 200);

  // The two Pusher publishes learn their seq from the log.
  await until(async () => {
    const log = await hub.api('GET', `/api/events?channel=${CHANNEL}&limit=20`, undefined, { token: true });
    for (const e of log.body.events) published.set(e.data.n, e.seq);
    return published.size === 6;
  }, 5000, 'all six in the log');

  const names = ['rest', 'mcp', 'ws', 'socketio', 'pusher-client', 'pusher-api'];
  await until(() => Object.values(seen).every((m) => names.every((n) => m.has(n))) && names.every((n) => pjsGot.includes(n)),
    10_000, 'every subscriber to see every event');
  for (const [who, m] of Object.entries(seen)) {
    for (const n of names) assert.equal(m.get(n), published.get(n), `${who} got ${n} with its seq`);
  }
  assert.equal(new Set(published.values()).size, 6, 'six distinct seqs');
  for (const c of closers) await c();
});
