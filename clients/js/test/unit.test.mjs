// Unit tests of dist/client.js against a scripted WebSocket (test-support/fake-ws.mjs) and node:test's fake timers:
// back-off growth and jitter, reconnect on every close code, the resume URL, exactly-once delivery when a resume of
// several channels is cut off mid-replay (and while a channel resumed apart replays out of seq order), resync,
// publish acks with their idempotency keys and errors, the heartbeat watchdog.
import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';
import { SwitchboardError, connect } from '../dist/client.js';
import { FakeWS } from '../test-support/fake-ws.mjs';

beforeEach(() => FakeWS.reset());

/** A random source that plays `values` in turn. */
const seq = (...values) => {
  let i = 0;
  return () => values[i++ % values.length];
};

test('back-off grows exponentially up to the cap, with full jitter, and resets after a connection', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const rand = [0.5, 0.9, 0.25, 0.999, 0.1, 0.6, 0.3, 0.7];
  const conn = connect({ url: 'http://hub:1', WebSocket: FakeWS, backoff: { base: 100, cap: 1000 }, random: seq(...rand) });
  const scheduled = [];
  const states = [];
  conn.on('reconnect', (r) => scheduled.push(r));
  conn.on('state', (s) => states.push(s));
  assert.equal(conn.state, 'connecting');
  assert.equal(FakeWS.all.length, 1);

  // Seven failures in a row: each retry waits random() · min(cap, base·2^attempt), and not a millisecond less.
  for (let attempt = 0; attempt < 7; attempt++) {
    FakeWS.last.drop(1006);
    const { delay } = scheduled.at(-1);
    assert.equal(scheduled.at(-1).attempt, attempt);
    assert.equal(delay, rand[attempt] * Math.min(1000, 100 * 2 ** attempt));
    assert.equal(conn.state, 'offline');
    const sockets = FakeWS.all.length;
    if (delay >= 1) {
      t.mock.timers.tick(delay - 0.5);
      assert.equal(FakeWS.all.length, sockets, 'no reconnect before the delay');
    }
    t.mock.timers.tick(1);
    assert.equal(FakeWS.all.length, sockets + 1, 'a reconnect once the delay is over');
    assert.equal(conn.state, 'connecting');
  }
  const ceilings = scheduled.map((r) => Math.min(1000, 100 * 2 ** r.attempt));
  assert.deepEqual(ceilings, [100, 200, 400, 800, 1000, 1000, 1000], 'the ceiling doubles, then stays at the cap');
  // Jitter: the delays are spread over [0, ceiling), not the ceiling itself.
  // non-empty: the deepEqual above has seven
  assert.ok(scheduled.every((r, i) => r.delay >= 0 && r.delay < ceilings[i]));
  assert.ok(new Set(scheduled.map((r) => r.delay / Math.min(1000, 100 * 2 ** r.attempt))).size > 4);

  // A successful connection resets the back-off.
  FakeWS.last.greet();
  assert.equal(conn.state, 'live');
  FakeWS.last.drop(1006);
  assert.equal(scheduled.at(-1).attempt, 0);
  assert.equal(scheduled.at(-1).delay, rand[7] * 100);
  assert.deepEqual(states.slice(0, 3), ['offline', 'connecting', 'offline']);
  conn.close();
});

test('the same attempt gets different delays: the jitter is the random source', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const delays = [];
  for (const r of [0, 0.3, 0.6, 0.99]) {
    const conn = connect({ url: 'http://hub:1', WebSocket: FakeWS, backoff: { base: 400 }, random: () => r });
    conn.on('reconnect', ({ delay }) => delays.push(delay));
    FakeWS.last.drop(1006);
    conn.close();
  }
  assert.deepEqual(delays, [0, 0.3 * 400, 0.6 * 400, 0.99 * 400]);
});

test('default back-off: base 500 ms, cap 30 s, Math.random', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const conn = connect({ url: 'http://hub:1', WebSocket: FakeWS });
  const r = [];
  conn.on('reconnect', (x) => r.push(x));
  for (let i = 0; i < 12; i++) {
    FakeWS.last.drop();
    t.mock.timers.tick(30000);
  }
  assert.equal(r.length, 12);
  // non-empty: twelve, just above
  assert.ok(r.every((x) => x.delay >= 0 && x.delay < Math.min(30000, 500 * 2 ** x.attempt)));
  conn.close();
});

test('every close code reconnects (1001 shutdown, 4008 slow consumer, 4010, 1000); only close() stops it', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const conn = connect({ url: 'http://hub:1', WebSocket: FakeWS, random: () => 0.5 });
  const codes = [];
  conn.on('reconnect', (r) => codes.push(r.code));
  for (const code of [1001, 4008, 4010, 1000, 1006]) {
    FakeWS.last.greet();
    FakeWS.last.drop(code);
    t.mock.timers.tick(1000);
  }
  assert.deepEqual(codes, [1001, 4008, 4010, 1000, 1006]);
  assert.equal(FakeWS.all.length, 6);
  FakeWS.last.greet();
  const open = FakeWS.last;
  conn.close();
  assert.equal(open.closed, 1000);
  assert.equal(conn.state, 'closed');
  t.mock.timers.tick(3_600_000);
  assert.equal(FakeWS.all.length, 6, 'no reconnect after close()');
});

test('close() while waiting to retry cancels the retry', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const conn = connect({ url: 'http://hub:1', WebSocket: FakeWS, random: () => 0.5 });
  FakeWS.last.drop();
  assert.equal(conn.state, 'offline');
  conn.close();
  t.mock.timers.tick(60000);
  assert.equal(FakeWS.all.length, 1);
});

test('the URL: ws endpoint, channels, token; reconnect resumes with since and epoch, .subscribe()d channels included', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const conn = connect({ url: 'http://127.0.0.1:4747', token: 'tk', channels: ['agent:*', 'global'], WebSocket: FakeWS, random: () => 0 });
  let u = FakeWS.last.url;
  assert.equal(u.origin + u.pathname, 'ws://127.0.0.1:4747/ws');
  assert.equal(u.searchParams.get('channels'), 'agent:*,global');
  assert.equal(u.searchParams.get('token'), 'tk');
  assert.equal(u.searchParams.get('since'), null, 'a first connection without since is live');
  FakeWS.last.greet({ epoch: 'E7', last_seq: 40 });
  assert.equal(conn.lastSeq, 40);
  assert.equal(conn.epoch, 'E7');
  conn.subscribe('project:1');
  assert.deepEqual(FakeWS.last.sentOf('subscribe').map((f) => [f.channel, f.since]), [['project:1', undefined]]);
  FakeWS.last.event(41, 'project:1');
  conn.unsubscribe('global');
  FakeWS.last.drop(1006);
  t.mock.timers.tick(0);
  u = FakeWS.last.url;
  assert.equal(u.searchParams.get('channels'), 'agent:*,project:1');
  assert.equal(u.searchParams.get('since'), '41');
  assert.equal(u.searchParams.get('epoch'), 'E7');
  assert.deepEqual(conn.channels, ['agent:*', 'project:1']);
  conn.close();

  for (const [url, want] of [
    ['https://hub.example/', 'wss://hub.example/ws'],
    ['ws://127.0.0.1:9/ws', 'ws://127.0.0.1:9/ws'],
    ['http://h:9/prefix', 'ws://h:9/prefix/ws'],
    ['ws://h:9/ws/my-client', 'ws://h:9/ws/my-client'],
  ]) {
    connect({ url, WebSocket: FakeWS }).close();
    assert.equal(FakeWS.last.url.origin + FakeWS.last.url.pathname, want);
  }
});

test('a connection given since and epoch starts with them', () => {
  const conn = connect({ url: 'http://h:1', channels: ['a'], since: 7, epoch: 'E1', WebSocket: FakeWS });
  assert.equal(FakeWS.last.url.searchParams.get('since'), '7');
  assert.equal(FakeWS.last.url.searchParams.get('epoch'), 'E1');
  assert.equal(conn.lastSeq, 7);
  conn.close();
});

test('a resume of several channels is one replay in seq order: dropped mid-replay, it resumes from the highest seq seen', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const conn = connect({ url: 'http://h:1', channels: ['a', 'b'], since: 10, epoch: 'E1', WebSocket: FakeWS, random: () => 0 });
  const got = [];
  conn.on('*', (e) => got.push(e.seq));
  let ws = FakeWS.last;
  assert.equal(ws.url.searchParams.get('channels'), 'a,b', 'both resumed by the connection itself');
  ws.greet({ epoch: 'E1', last_seq: 20 });
  ws.event(11, 'a');
  ws.event(12, 'b');
  ws.event(13, 'a');
  ws.event(12, 'b'); // a duplicate (safety net)
  ws.event(9, 'a'); // at or below since: never
  assert.deepEqual(got, [11, 12, 13]);
  assert.equal(conn.lastSeq, 13);
  ws.drop(4008);
  t.mock.timers.tick(0);
  ws = FakeWS.last;
  assert.equal(ws.url.searchParams.get('since'), '13', 'every event up to the highest seq seen is in');
  ws.greet({ epoch: 'E1', last_seq: 22 });
  for (const s of [14, 15, 21, 22]) ws.event(s, s % 2 ? 'a' : 'b');
  assert.deepEqual(got, [11, 12, 13, 14, 15, 21, 22]);
  ws.drop(1001);
  t.mock.timers.tick(0);
  assert.equal(FakeWS.last.url.searchParams.get('since'), '22');
  conn.close();
});

test('a channel resumed apart (a name with a comma) keeps each event once until its replay ends', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const conn = connect({ url: 'http://h:1', channels: ['a', 'b,c'], since: 10, epoch: 'E1', WebSocket: FakeWS, random: () => 0 });
  const got = [];
  conn.on('*', (e) => got.push(e.seq));
  let ws = FakeWS.last;
  ws.greet({ epoch: 'E1', last_seq: 20 });
  const frame = ws.sentOf('subscribe').at(-1);
  assert.deepEqual([frame.channel, frame.since], ['b,c', 10], 'the comma channel resumes by frame');
  assert.ok(ws.sentOf('ping').at(-1)?.id != null, 'a ping marks the end of the replays');
  // The connection's replay of a, a live event, then the frame's replay of b,c: not in seq order.
  ws.event(11, 'a');
  ws.event(13, 'a');
  ws.event(21, 'a');
  ws.event(12, 'b,c');
  ws.event(21, 'a');
  assert.deepEqual(got, [11, 13, 21, 12]);
  // Dropped before the replays ended: resume from the last point known complete, not from the highest seq seen.
  ws.drop(4008);
  t.mock.timers.tick(0);
  ws = FakeWS.last;
  assert.equal(ws.url.searchParams.get('since'), '10');
  ws.greet({ epoch: 'E1', last_seq: 22 });
  for (const s of [11, 13, 14, 21, 12, 15, 22]) ws.event(s, s % 2 ? 'a' : 'b,c');
  assert.deepEqual(got, [11, 13, 21, 12, 14, 15, 22]);
  ws.frame({ type: 'pong', id: ws.sentOf('ping').at(-1).id });
  assert.equal(conn.lastSeq, 22);
  ws.event(23, 'a');
  ws.drop(1001);
  t.mock.timers.tick(0);
  assert.equal(FakeWS.last.url.searchParams.get('since'), '23');
  conn.close();
});

test('after the replays, lastSeq moves to the hub position at connect even without events', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const conn = connect({ url: 'http://h:1', channels: ['quiet'], since: 5, epoch: 'E1', WebSocket: FakeWS, random: () => 0 });
  FakeWS.last.greet({ epoch: 'E1', last_seq: 900 });
  FakeWS.last.frame({ type: 'ack', ok: true, channel: 'quiet', recovered: true });
  assert.equal(conn.lastSeq, 5);
  FakeWS.last.frame({ type: 'pong', id: FakeWS.last.sentOf('ping').at(-1).id });
  assert.equal(conn.lastSeq, 900);
  conn.close();
});

test('resync: another epoch resets lastSeq and calls onResync; events of the new log are delivered', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const calls = [];
  const conn = connect({ url: 'http://h:1', channels: ['a'], WebSocket: FakeWS, random: () => 0, onResync: (i) => calls.push(['opt', i]) });
  conn.on('resync', (i) => calls.push(['on', i]));
  FakeWS.last.greet({ epoch: 'E1', last_seq: 0 });
  for (let s = 1; s <= 50; s++) FakeWS.last.event(s);
  FakeWS.last.drop();
  t.mock.timers.tick(0);
  FakeWS.last.greet({ epoch: 'E2', last_seq: 3 });
  FakeWS.last.frame({ type: 'ack', ok: true, channel: 'a', recovered: false });
  const info = { reason: 'epoch', epoch: 'E2', previousEpoch: 'E1', lastSeq: 3, previousLastSeq: 50 };
  assert.deepEqual(calls, [['opt', info], ['on', info]], 'once per connection, through both');
  assert.equal(conn.lastSeq, 3);
  assert.equal(conn.epoch, 'E2');
  const got = [];
  conn.on('a', () => {});
  conn.on('*', (e) => got.push(e.seq));
  FakeWS.last.event(4);
  assert.deepEqual(got, [4]);
  conn.close();
});

test('resync: recovered:false in the same epoch (pruned) moves on from the hub position', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const conn = connect({ url: 'http://h:1', channels: ['a'], since: 2, epoch: 'E1', WebSocket: FakeWS });
  const calls = [];
  conn.on('resync', (i) => calls.push(i));
  FakeWS.last.greet({ epoch: 'E1', last_seq: 500 });
  FakeWS.last.frame({ type: 'ack', ok: true, channel: 'a', recovered: false });
  assert.deepEqual(calls, [{ reason: 'pruned', epoch: 'E1', previousEpoch: 'E1', lastSeq: 500, previousLastSeq: 2 }]);
  assert.equal(conn.lastSeq, 500);
  conn.close();
});

test('publish: resolves with the seq, rejects with the hub error; waits while offline; in flight at a drop goes again with its key', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const conn = connect({ url: 'http://h:1', WebSocket: FakeWS, random: () => 0 });
  const queued = conn.publish('p', 'made-while-connecting', { x: 1 });
  FakeWS.last.greet();
  const [f1] = FakeWS.last.sentOf('publish');
  assert.equal(typeof f1.idempotency_key, 'string');
  assert.deepEqual({ ...f1, id: 0, idempotency_key: 'k' },
    { type: 'publish', id: 0, channel: 'p', event: 'made-while-connecting', data: { x: 1 }, idempotency_key: 'k' });
  FakeWS.last.frame({ type: 'ack', id: f1.id, ok: true, seq: 77 });
  assert.deepEqual(await queued, { seq: 77 });

  const bad = conn.publish('p', 'bad name');
  const f2 = FakeWS.last.sentOf('publish').at(-1);
  FakeWS.last.frame({ type: 'error', id: f2.id, error: { code: 'invalid_field', message: 'event: must be …' } });
  await assert.rejects(bad, (e) => e instanceof SwitchboardError && e.code === 'invalid_field' && e.message === 'event: must be …');

  const inFlight = conn.publish('p', 'in-flight');
  const sent = FakeWS.last.sentOf('publish').at(-1);
  FakeWS.last.drop();
  const later = conn.publish('p', 'while-offline');
  t.mock.timers.tick(0);
  assert.equal(FakeWS.last.sent.length, 0, 'nothing is sent before the greeting');
  FakeWS.last.greet();
  const [again, f3] = FakeWS.last.sentOf('publish');
  assert.deepEqual(again, sent, 'the one in flight goes first, the same frame with the same key');
  assert.equal(f3.event, 'while-offline');
  // The hub is still committing the first try: it says so, and the client asks again with the same key.
  FakeWS.last.frame({ type: 'error', id: again.id, error: { code: 'idempotency_in_flight', message: 'busy' } });
  t.mock.timers.tick(100);
  assert.deepEqual(FakeWS.last.sentOf('publish').at(-1), sent);
  FakeWS.last.frame({ type: 'ack', id: again.id, ok: true, seq: 78 });
  FakeWS.last.frame({ type: 'ack', id: f3.id, ok: true, seq: 79 });
  assert.deepEqual(await inFlight, { seq: 78 });
  assert.deepEqual(await later, { seq: 79 });

  const big = conn.publish('p', 'big', 'x'.repeat(1 << 20));
  await assert.rejects(big, { code: 'payload_too_large' });
  const pendingAtClose = conn.publish('p', 'never');
  conn.close();
  await assert.rejects(pendingAtClose, { code: 'closed' });
  await assert.rejects(conn.publish('p', 'after'), { code: 'closed' });
});

test('on(): by event name and "*", unsubscribe function, lifecycle names only reach "*"', () => {
  const conn = connect({ url: 'http://h:1', WebSocket: FakeWS });
  FakeWS.last.greet();
  const named = [];
  const all = [];
  const off = conn.on('build.done', (e) => named.push(e));
  conn.on('*', (e) => all.push(e.event));
  const errors = [];
  conn.on('error', (e) => errors.push(e));
  FakeWS.last.event(1, 'a', 'build.done');
  FakeWS.last.event(2, 'a', 'other');
  FakeWS.last.event(3, 'a', 'error');
  off();
  FakeWS.last.event(4, 'a', 'build.done');
  assert.deepEqual(named, [{ seq: 1, id: 'id1', channel: 'a', event: 'build.done', data: { seq: 1 }, source: 'rest', ts: 't' }]);
  assert.deepEqual(all, ['build.done', 'other', 'error', 'build.done']);
  assert.equal(errors.length, 0, 'a hub event named "error" is not a client error');
  FakeWS.last.frame({ type: 'error', id: null, error: { code: 'payload_too_large', message: 'm' } });
  assert.equal(errors[0].code, 'payload_too_large');
  conn.close();
});

test('subscribe(): acked by the hub, bad patterns refused here, comma names by frame with resume', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  assert.throws(() => connect({ url: 'http://h:1', channels: ['no spaces'], WebSocket: FakeWS }), { code: 'invalid_field' });
  const conn = connect({ url: 'http://h:1', channels: ['x,y'], WebSocket: FakeWS, random: () => 0 });
  assert.equal(FakeWS.last.url.searchParams.get('channels'), null, 'a name with a comma cannot go in ?channels=');
  FakeWS.last.greet({ epoch: 'E1', last_seq: 3 });
  let [f] = FakeWS.last.sentOf('subscribe');
  assert.equal(f.channel, 'x,y');
  assert.equal(f.since, undefined);
  await assert.rejects(conn.subscribe('a*b'), { code: 'invalid_field' });
  const p = conn.subscribe('agent:*');
  f = FakeWS.last.sentOf('subscribe').at(-1);
  FakeWS.last.frame({ type: 'ack', id: f.id, ok: true });
  await p;
  const refused = conn.subscribe('private-x');
  f = FakeWS.last.sentOf('subscribe').at(-1);
  FakeWS.last.frame({ type: 'error', id: f.id, error: { code: 'forbidden', message: 'no' } });
  await assert.rejects(refused, { code: 'forbidden' });
  assert.deepEqual(conn.channels, ['x,y', 'agent:*'], 'a refused pattern is not retried');
  FakeWS.last.drop();
  t.mock.timers.tick(0);
  assert.equal(FakeWS.last.url.searchParams.get('channels'), 'agent:*');
  FakeWS.last.greet({ epoch: 'E1', last_seq: 9 });
  f = FakeWS.last.sentOf('subscribe').at(-1);
  assert.deepEqual([f.channel, f.since, f.epoch], ['x,y', 3, 'E1'], 'resumed like the URL channels');
  // A subscribe made while offline is acknowledged by the next connection's connect-time ack.
  FakeWS.last.drop();
  const offline = conn.subscribe('later');
  t.mock.timers.tick(0);
  assert.equal(FakeWS.last.url.searchParams.get('channels'), 'agent:*,later');
  FakeWS.last.greet({ epoch: 'E1', last_seq: 9 });
  FakeWS.last.frame({ type: 'ack', ok: true, channel: 'later', recovered: true });
  await offline;
  conn.close();
});

test('heartbeat watchdog: a socket silent for two heartbeats is dropped and replaced', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const conn = connect({ url: 'http://h:1', WebSocket: FakeWS, random: () => 0 });
  const ws = FakeWS.last;
  ws.greet({ heartbeat_s: 10 });
  t.mock.timers.tick(10000);
  assert.equal(ws.sentOf('ping').length, 1);
  ws.frame({ type: 'pong', id: null });
  t.mock.timers.tick(10000);
  t.mock.timers.tick(10000);
  assert.equal(FakeWS.all.length, 1, 'one silent heartbeat is tolerated');
  t.mock.timers.tick(10000);
  assert.equal(ws.closed, 1000);
  assert.equal(conn.state, 'connecting');
  assert.equal(FakeWS.all.length, 2);
  conn.close();
});

test('close() from inside a state or reconnect handler holds', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const a = connect({ url: 'http://h:1', WebSocket: FakeWS });
  a.on('state', (s) => s === 'live' && a.close());
  FakeWS.last.greet();
  assert.equal(a.state, 'closed');
  assert.equal(FakeWS.last.closed, 1000);
  const b = connect({ url: 'http://h:1', WebSocket: FakeWS, random: () => 0 });
  b.on('reconnect', () => b.close());
  FakeWS.last.drop();
  t.mock.timers.tick(60000);
  assert.equal(b.state, 'closed');
  assert.equal(FakeWS.all.length, 2);
});

test('no WebSocket anywhere: a clear error', () => {
  if (globalThis.WebSocket) return;
  assert.throws(() => connect({ url: 'http://h:1' }), { code: 'no_websocket' });
});
