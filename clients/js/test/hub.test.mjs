// The client against the real hub binary: SIGKILL and restart mid-stream with no gap and no duplicate, resume of
// several channels (replayed together, in seq order), resync on a new data dir and on a pruned log, and publish
// acks and errors.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connect } from '../dist/client.js';
import { Hub, WebSocket, range, until } from '../test-support/hub.mjs';

/** Retries wait exactly `ms` (random() = 1): long enough to publish after a restart before the client is back (the
 * restart and the publishes take well under a second here, even on a loaded machine, so give it a few). */
const fixedBackoff = (ms) => ({ backoff: { base: ms, cap: ms }, random: () => 1 });

test('SIGKILL and restart mid-stream: no gap, no duplicate, lastSeq continuous', async (t) => {
  const hub = await new Hub().start();
  t.after(() => hub.stop());
  const conn = connect({ url: hub.url, channels: ['test'], WebSocket, ...fixedBackoff(3000) });
  t.after(() => conn.close());
  const got = [];
  const lastSeqs = [];
  const lives = [];
  conn.on('*', (e) => {
    got.push(e.seq);
    lastSeqs.push(conn.lastSeq);
  });
  conn.on('state', (s) => s === 'live' && lives.push(Date.now()));
  await until(() => conn.state === 'live', 5000, 'live');

  const before = [];
  for (let i = 0; i < 10; i++) before.push(await hub.publish('test', 'before', { i }));
  await until(() => conn.lastSeq === before.at(-1), 5000, 'the first events');

  // A stream of publishes is under way when the hub dies; some may be committed and never sent.
  let streaming = true;
  const during = [];
  const stream = (async () => {
    while (streaming) {
      try {
        during.push(await hub.publish('test', 'during', {}));
      } catch {
        // the hub is gone
      }
    }
  })();
  await until(() => during.length >= 25, 5000, 'the stream');
  await hub.kill();
  streaming = false;
  await stream;
  await until(() => conn.state === 'offline', 5000, 'offline');
  const atKill = got.length;

  await hub.start();
  const whileAway = [];
  for (let i = 0; i < 10; i++) whileAway.push(await hub.publish('test', 'after-restart', { i }));
  const publishedAt = Date.now();
  await until(() => conn.state === 'live', 5000, 'live again');
  assert.equal(lives.length, 2);
  assert.ok(lives[1] > publishedAt, 'these events were published before the client came back: it got them by resume');

  const after = [];
  for (let i = 0; i < 10; i++) after.push(await hub.publish('test', 'after', { i }));
  await until(() => conn.lastSeq === after.at(-1), 5000, 'the last event');

  const resumed = got.slice(atKill).filter((s) => s <= whileAway.at(-1)).length;
  t.diagnostic(`${atKill} events before the kill (${during.length} acked mid-stream), ${resumed} by resume, ${after.length} live after`);
  const log = await hub.logSeqs('test');
  assert.deepEqual(got, log, 'every logged event exactly once, in order');
  assert.deepEqual(got, range(got[0], got.at(-1)), 'no gap');
  assert.deepEqual(lastSeqs, got, 'lastSeq is the seq of each event as it arrives');
  for (const s of [...before, ...during, ...whileAway, ...after]) assert.ok(got.includes(s), `seq ${s}`);
  assert.equal(conn.lastSeq, after.at(-1));
});

test('several channels and .subscribe(): a resume replays them all at once, each event once, in seq order', async (t) => {
  const hub = await new Hub().start();
  t.after(() => hub.stop());
  const conn = connect({ url: hub.url, channels: ['a', 'b:*'], WebSocket, ...fixedBackoff(600) });
  t.after(() => conn.close());
  const got = [];
  conn.on('*', (e) => got.push(e.seq));
  await until(() => conn.state === 'live', 5000, 'live');
  await conn.subscribe('c');
  const mine = [];
  const others = [];
  const round = async (n) => {
    for (let i = 0; i < n; i++) {
      for (const ch of ['a', 'b:1', 'b:2', 'c', 'global', 'x']) {
        const seq = await hub.publish(ch, 'tick', { i });
        (ch === 'x' ? others : mine).push(seq);
      }
    }
  };
  await round(3);
  await until(() => conn.lastSeq === mine.at(-1), 5000, 'round 1');
  await hub.kill();
  await until(() => conn.state === 'offline', 5000, 'offline');
  await hub.start();
  await round(4); // all replayed on reconnect: one replay of every pattern, merged in seq order
  await until(() => conn.state === 'live', 5000, 'live again');
  await round(2);
  await until(() => got.length === mine.length, 5000, 'every event');
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual([...got].sort((x, y) => x - y), mine, 'each event of a, b:*, c and global exactly once');
  assert.ok(others.length > 0 && others.every((s) => !got.includes(s)), 'nothing from channels not followed');
  assert.deepEqual(got, mine, 'in strictly increasing seq, replayed and live alike');
  assert.equal(conn.lastSeq, mine.at(-1));
});

test('a new data dir behind the same port (new epoch) calls onResync; the new log is followed', async (t) => {
  const hub = await new Hub().start();
  t.after(() => hub.stop());
  const resyncs = [];
  const conn = connect({ url: hub.url, channels: ['test'], WebSocket, ...fixedBackoff(300), onResync: (i) => resyncs.push(i) });
  t.after(() => conn.close());
  const got = [];
  conn.on('*', (e) => got.push(e.seq));
  await until(() => conn.state === 'live', 5000, 'live');
  const oldEpoch = conn.epoch;
  for (let i = 0; i < 8; i++) await hub.publish('test', 'old', { i });
  await until(() => conn.lastSeq === 8, 5000, 'old events');

  await hub.kill();
  hub.newDir();
  await hub.start();
  const health = await hub.api('GET', '/health');
  assert.notEqual(health.body.epoch, oldEpoch);
  await until(() => resyncs.length === 1, 5000, 'resync');
  assert.deepEqual(resyncs[0], {
    reason: 'epoch',
    epoch: health.body.epoch,
    previousEpoch: oldEpoch,
    lastSeq: 0,
    previousLastSeq: 8,
  });
  assert.equal(conn.epoch, health.body.epoch);
  const fresh = await hub.publish('test', 'new', {});
  assert.equal(fresh, 1, 'the new log starts again');
  await until(() => got.length === 9, 5000, 'the first event of the new log');
  assert.deepEqual(got, [...range(1, 8), 1], 'seq 1 again, not dropped as a duplicate of the old log\'s 1');
  assert.equal(conn.lastSeq, 1);
  assert.equal(resyncs.length, 1);
});

test('resuming from a seq that retention has pruned calls onResync (pruned) and goes on live', async (t) => {
  const hub = await new Hub(['--retention-events', '3']).start();
  t.after(() => hub.stop());
  for (let i = 0; i < 10; i++) await hub.publish('test', 'e', { i });
  // Retention runs at start.
  await hub.kill();
  await hub.start();
  await until(async () => (await hub.logSeqs('test'))[0] > 2, 5000, 'retention');
  const { epoch } = (await hub.api('GET', '/health')).body;
  const resyncs = [];
  const conn = connect({ url: hub.url, channels: ['test'], since: 2, epoch, WebSocket });
  t.after(() => conn.close());
  conn.on('resync', (i) => resyncs.push(i));
  const got = [];
  conn.on('*', (e) => got.push(e.seq));
  await until(() => resyncs.length === 1, 5000, 'resync');
  assert.deepEqual(resyncs[0], { reason: 'pruned', epoch, previousEpoch: epoch, lastSeq: 10, previousLastSeq: 2 });
  const seq = await hub.publish('test', 'live', {});
  await until(() => got.includes(seq), 5000, 'live event');
  assert.deepEqual(got, [11]);
});

test('publish resolves with the seq; a bad publish rejects with the hub error code and the connection goes on', async (t) => {
  const hub = await new Hub().start();
  t.after(() => hub.stop());
  const conn = connect({ url: hub.url, channels: ['project:*'], WebSocket });
  t.after(() => conn.close());
  const got = [];
  conn.on('note', (e) => got.push(e));
  const early = conn.publish('project:1', 'note', { text: 'sent once live' });
  const ack = await early;
  assert.deepEqual(Object.keys(ack), ['seq']);
  const second = await conn.publish('project:1', 'note', { text: 'two' });
  assert.equal(second.seq, ack.seq + 1);
  const log = (await hub.api('GET', '/api/events?channel=project:1&since=0')).body.events;
  assert.deepEqual(log.map((e) => [e.seq, e.data.text, e.source]), [[ack.seq, 'sent once live', 'ws'], [second.seq, 'two', 'ws']]);

  await assert.rejects(conn.publish('project:1', 'has space', {}), (e) => e.code === 'invalid_field' && /event/.test(e.message));
  await assert.rejects(conn.publish('no spaces allowed', 'note', {}), { code: 'invalid_field' });
  await assert.rejects(conn.publish('private-team', 'note', {}), { code: 'forbidden' });
  await assert.rejects(conn.publish('project:1', 'note', { big: 'x'.repeat(70 * 1024) }), { code: 'payload_too_large' });
  assert.equal(conn.state, 'live');
  const third = await conn.publish('project:1', 'note', { text: 'three' });
  assert.equal(third.seq, second.seq + 1);
  await until(() => got.length === 3, 5000, 'own events');
  assert.deepEqual(got.map((e) => e.data.text), ['sent once live', 'two', 'three']);
});
