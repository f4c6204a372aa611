// socket.io-client 4.8, unmodified, against the real binary (SPEC §6): connect and greet, subscribe and
// unsubscribe with acks, events under their own names from REST and MCP, client publish, debug:rooms, refusals,
// resume through the auth payload after the hub is SIGKILLed and restarted, one order for a resume of several
// rooms, and the slow consumer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import { Hub, assertContinuous, jwt, sleep, until } from './hub.mjs';

let hub;
// A small per-connection queue, so the slow-consumer test needs little data to overflow it.
before(async () => { hub = await new Hub(['--queue-capacity', '256']).start(); });
after(async () => { await hub.stop(); });

/** A connected socket and everything it receives, by event name. */
async function connect(nsp = '/', opts = {}) {
  const socket = io(hub.url + nsp, { transports: ['websocket'], reconnection: false, ...opts });
  const got = [];
  socket.onAny((event, payload) => got.push({ event, payload }));
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', reject);
  });
  return { socket, got };
}

for (const nsp of ['/', '/ws']) {
  test(`socket.io ${nsp}: greeting, subscribe acks, REST and MCP events by name, publish, debug:rooms`, { timeout: 20_000 }, async () => {
    const { socket, got } = await connect(nsp);
    await until(() => got.find((g) => g.event === 'connection_established'), 2000, 'connection_established');
    const hello = got.find((g) => g.event === 'connection_established').payload;
    assert.equal(hello.data.connection_id, socket.id);

    const ack = await socket.emitWithAck('subscribe', { room: 'agent:*' });
    assert.deepEqual(ack, { status: 'success', room: 'agent:*' });
    assert.deepEqual((await socket.emitWithAck('subscribe', 'sio:room')).status, 'success');
    assert.deepEqual((await socket.emitWithAck('debug:rooms')).sort(), ['agent:*', 'global', 'sio:room']);

    const created = await hub.api('POST', '/api/agents', { name: `sio-${nsp}` });
    assert.equal(created.status, 201);
    const mcp = await hub.mcp();
    const byMcp = await mcp.callTool({ name: 'publish_event', arguments: { channel: 'sio:room', event: 'from.mcp', data: { n: 1 } } });
    assert.ok(!byMcp.isError, JSON.stringify(byMcp));
    await mcp.close();

    const rest = await until(() => got.find((g) => g.event === 'agent.created'), 3000, 'agent.created');
    assert.equal(rest.payload.data.id, created.body.id);
    assert.equal(rest.payload.source, 'rest');
    const fromMcp = await until(() => got.find((g) => g.event === 'from.mcp'), 3000, 'the MCP event');
    assert.equal(fromMcp.payload.seq, byMcp.structuredContent.seq);
    assert.equal(fromMcp.payload.source, 'mcp');
    assert.deepEqual(fromMcp.payload.data, { n: 1 });

    const pub = await socket.emitWithAck('publish', { channel: 'sio:room', event: 'from.client', data: { ok: true } });
    assert.equal(pub.status, 'success');
    const echoed = await until(() => got.find((g) => g.event === 'from.client'), 3000, 'own publish');
    assert.equal(echoed.payload.seq, pub.seq);
    assert.equal(echoed.payload.source, 'socketio');

    const unsub = await socket.emitWithAck('unsubscribe', { room: 'sio:room' });
    assert.deepEqual(unsub, { status: 'success', room: 'sio:room', existed: true });
    await hub.api('POST', '/api/events', { channel: 'sio:room', event: 'after.unsub', data: null });
    await hub.api('POST', '/api/events', { channel: 'global', event: 'marker', data: null });
    await until(() => got.find((g) => g.event === 'marker'), 3000, 'the marker on global');
    assert.ok(!got.some((g) => g.event === 'after.unsub'), 'nothing after unsubscribe');

    const bad = await socket.emitWithAck('subscribe', { room: 'bad room!' });
    assert.equal(bad.status, 'error');
    assert.match(bad.message, /channel/);
    const badPub = await socket.emitWithAck('publish', { channel: 'sio:room' });
    assert.equal(badPub.status, 'error');
    assert.ok(socket.connected, 'a bad message leaves the connection open');
    socket.close();
  });
}

test('socket.io: refusals surface as connect_error or an error ack', { timeout: 20_000 }, async () => {
  const wrong = io(hub.url, { transports: ['websocket'], reconnection: false, auth: { token: 'not-the-token' } });
  const err = await new Promise((resolve) => wrong.once('connect_error', resolve));
  assert.match(err.message, /unauthorized/);
  wrong.close();

  // A JWT limited to private-a may not reach private-b; the anonymous caller reaches no private channel.
  const token = jwt(hub.token, { sub: 'u1', channels: ['private-a'], publish: ['private-a'] });
  const { socket } = await connect('/', { auth: { token } });
  assert.equal((await socket.emitWithAck('subscribe', { room: 'private-a' })).status, 'success');
  const refused = await socket.emitWithAck('subscribe', { room: 'private-b' });
  assert.equal(refused.status, 'error');
  assert.equal(refused.code, 'forbidden');
  const noPub = await socket.emitWithAck('publish', { channel: 'private-b', event: 'x', data: null });
  assert.equal(noPub.code, 'forbidden');
  socket.close();
  const anon = await connect('/');
  assert.equal((await anon.socket.emitWithAck('subscribe', { room: 'private-a' })).code, 'forbidden');

  // Over 1 MiB: refused, nothing published.
  const before = (await hub.api('GET', '/api/events?channel=big&limit=10', undefined, { token: true })).body.events.length;
  const closed = new Promise((resolve) => anon.socket.once('disconnect', resolve));
  anon.socket.emit('publish', { channel: 'big', event: 'huge', data: 'x'.repeat(1_200_000) });
  await closed;
  const afterIt = (await hub.api('GET', '/api/events?channel=big&limit=10', undefined, { token: true })).body.events.length;
  assert.equal(afterIt, before, 'the oversized message published nothing');
});

test('socket.io: resume through the auth payload after the hub is SIGKILLed and restarted', { timeout: 60_000 }, async () => {
  const r = await hub.api('POST', '/api/events', { channel: 'resume:x', event: 'start', data: null });
  const base = r.body.seq;
  let lastSeq = base;
  const seqs = [];
  const socket = io(hub.url, {
    transports: ['websocket'],
    reconnectionDelay: 300,
    reconnectionDelayMax: 600,
    // Sent again on every reconnect, with the last seq seen.
    auth: (cb) => cb({ since: lastSeq, channels: ['resume:*'] }),
  });
  socket.on('tick', (e) => {
    seqs.push(e.seq);
    lastSeq = e.seq;
  });
  await new Promise((resolve) => socket.once('connect', resolve));
  await sleep(100);

  const publish = async (n) => {
    for (let i = 0; i < n; i++) {
      const p = await hub.api('POST', '/api/events', { channel: 'resume:x', event: 'tick', data: { i } });
      assert.equal(p.status, 202);
    }
  };
  await publish(20);
  await until(() => seqs.length === 20, 5000, 'the first 20 ticks');

  // Mid-stream: SIGKILL, then come back on the same port and data dir, and publish while the client is away.
  const publishing = publish(30).catch(() => {});
  await sleep(20);
  await hub.kill();
  await publishing;
  await hub.start();
  await publish(30);
  const last = (await hub.api('GET', '/api/events?channel=resume:x&limit=1', undefined, { token: true })).body.events[0].seq;
  await until(() => lastSeq === last, 20_000, 'the resumed stream to reach the last seq');
  await sleep(200);
  assertContinuous(seqs, base + 1, last);
  socket.close();
});

test('socket.io: a resume of several rooms in the auth payload is one order, even cut off mid-replay', { timeout: 60_000 }, async () => {
  const channels = ['alpha:1', 'beta:1', 'gamma:1', 'global'];
  const base = (await hub.api('GET', '/api/events?limit=1')).body.last_seq;
  const want = [];
  for (let i = 0; i < 300; i++) {
    const r = await hub.api('POST', '/api/events', { channel: channels[i % 4], event: 'tick', data: { i } });
    assert.equal(r.status, 202);
    want.push(r.body.seq);
  }
  // As the README's snippet: every room in auth.channels, the highest seq seen in auth.since.
  const rooms = ['alpha:*', 'beta:*', 'gamma:*'];
  const seqsOf = (got) => got.filter((g) => g.payload?.seq).map((g) => g.payload.seq);
  const first = await connect('/', { auth: { since: base, channels: rooms } });
  await until(() => seqsOf(first.got).length >= 150, 10_000, 'half the replay');
  first.socket.disconnect();
  const seqs = seqsOf(first.got);
  const last = seqs.at(-1);
  const second = await connect('/', { auth: { since: last, channels: rooms } });
  await until(() => seqs.length + seqsOf(second.got).length >= want.length, 10_000, 'the rest of the replay');
  await sleep(200);
  second.socket.close();
  assert.deepEqual([...seqs, ...seqsOf(second.got)], want, 'every event exactly once, in strictly increasing seq');
});

test('socket.io: a socket that stops reading is disconnected, never waited for; it then resumes', { timeout: 90_000 }, async () => {
  const start = (await hub.api('POST', '/api/events', { channel: 'slow:x', event: 'start', data: null })).body.seq;
  let slowLast = start;
  const slowSeqs = [];
  const slow = io(hub.url, {
    transports: ['websocket'],
    reconnectionDelay: 200,
    auth: (cb) => cb({ since: slowLast, channels: ['slow:*'] }),
  });
  slow.on('bulk', (e) => { slowSeqs.push(e.seq); slowLast = e.seq; });
  await new Promise((resolve) => slow.once('connect', resolve));
  const fast = await connect('/', { auth: { channels: ['slow:*'] } });
  const firstId = slow.id;

  // Stop reading: pause the TCP socket under socket.io-client's WebSocket.
  const tcp = slow.io.engine.transport.ws._socket;
  tcp.pause();
  const payload = 'y'.repeat(16 * 1024);
  let last = start;
  const publishers = Array.from({ length: 8 }, async (_, k) => {
    for (let i = k; i < 4000; i += 8) {
      const p = await hub.api('POST', '/api/events', { channel: 'slow:x', event: 'bulk', data: { i, payload } });
      assert.equal(p.status, 202, 'publishing never waits for the slow socket');
      last = Math.max(last, p.body.seq);
    }
  });
  await Promise.all(publishers);

  // The hub let go of the slow socket while the other one kept up.
  await until(async () => {
    const { clients } = (await hub.api("GET", "/api/clients", undefined, { token: true })).body;
    return !clients.some((c) => c.id === firstId);
  }, 20_000, 'the slow socket to be cut off');
  await until(() => fast.got.filter((g) => g.event === 'bulk').length === 4000, 20_000, 'the fast socket to get all');

  tcp.resume();
  await until(() => slowLast === last, 40_000, 'the slow socket to catch up after reconnecting');
  assert.notEqual(slow.id, firstId, 'it reconnected');
  assert.deepEqual([...new Set(slowSeqs)].length, slowSeqs.length, 'no duplicates');
  assertContinuous(slowSeqs, start + 1, last);
  slow.close();
  fast.socket.close();
});
