// The react entry point's cache logic (syncAgents, which useAgentSync runs; the hook itself runs in the example
// app's browser tests, examples/agent-zoo): a real QueryClient (@tanstack/query-core, the one React Query
// re-exports) fed agent events by a stand-in connection, and then by a real connection to the real hub, through a
// SIGKILL restart and a new data dir.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { QueryClient, QueryObserver } from '@tanstack/query-core';
import { syncAgents } from '../dist/react.js';
import { Hub, WebSocket, until } from '../test-support/hub.mjs';

/** A connection the test drives: `emit('*', event)`, `emit('state', s)`, `emit('resync', info)`. */
function standIn() {
  const handlers = new Map();
  return {
    state: 'connecting',
    subscribed: [],
    closed: false,
    on(name, fn) {
      if (!handlers.has(name)) handlers.set(name, new Set());
      handlers.get(name).add(fn);
      return () => handlers.get(name).delete(fn);
    },
    emit(name, arg) {
      for (const fn of handlers.get(name) ?? []) fn(arg);
    },
    subscribe(p) {
      this.subscribed.push(p);
      return Promise.resolve();
    },
    close() {
      this.closed = true;
    },
  };
}

let seq = 0;
const event = (name, data, channel = `agent:${data.id}`) => ({
  seq: ++seq, id: `e${seq}`, channel, event: name, data, source: 'rest', ts: `2026-12-02T10:00:${String(seq % 60).padStart(2, '0')}.000Z`,
});
const agent = (id, version, name = id) => ({
  id, name, version, status: 'idle', description: '', config: {}, tags: [], model: null,
  created_at: '2026-12-02T09:00:00.000Z', updated_at: '2026-12-02T09:00:00.000Z',
});

/** A client holding: agent a (version 3) in ['agent','a'], the list ['agents'] as the REST shape, a filtered list,
 * an infinite list, and an unrelated ['projects'] query. */
function cache() {
  const qc = new QueryClient();
  qc.setQueryData(['agent', 'a'], agent('a', 3));
  qc.setQueryData(['agents'], { agents: [agent('a', 3), agent('b', 1)], next_cursor: null });
  qc.setQueryData(['agents', { status: 'idle' }], { agents: [agent('a', 3)], next_cursor: null });
  qc.setQueryData(['projects'], [1, 2]);
  const conn = standIn();
  const seen = [];
  const sync = syncAgents(qc, { connection: conn, onEvent: (e) => seen.push(e.event) });
  /** The keys now invalidated. */
  const stale = () =>
    qc.getQueryCache().getAll().filter((q) => q.state.isInvalidated).map((q) => JSON.stringify(q.queryKey)).sort();
  return { qc, conn, sync, seen, stale };
}

test('agent.created and agent.deleted invalidate the lists (and the deleted agent); nothing else is touched', () => {
  const { conn, stale, seen } = cache();
  assert.deepEqual(conn.subscribed, ['agent:*'], 'a given connection is subscribed to agent:*');
  conn.emit('*', event('agent.created', { id: 'c', name: 'c', version: 1 }));
  assert.deepEqual(stale(), ['["agents",{"status":"idle"}]', '["agents"]']);
  const again = cache();
  again.conn.emit('*', event('agent.deleted', { id: 'a', name: 'a' }));
  assert.deepEqual(again.stale(), ['["agent","a"]', '["agents",{"status":"idle"}]', '["agents"]']);
  assert.deepEqual(seen, ['agent.created']);
});

test('agent.updated of fields the event does not carry invalidates the agent and the lists', () => {
  const { conn, stale } = cache();
  conn.emit('*', event('agent.updated', { id: 'a', name: 'a', version: 4, changed: ['status'] }));
  assert.deepEqual(stale(), ['["agent","a"]', '["agents",{"status":"idle"}]', '["agents"]']);
});

test('a rename to the next version is applied in place: agent and unfiltered list, no refetch', () => {
  const { qc, conn, stale } = cache();
  const e = event('agent.updated', { id: 'a', name: 'Ada', version: 4, changed: ['name'] });
  conn.emit('*', e);
  assert.deepEqual(qc.getQueryData(['agent', 'a']), { ...agent('a', 4, 'Ada'), updated_at: e.ts });
  const list = qc.getQueryData(['agents']);
  assert.deepEqual(list.agents.map((x) => [x.id, x.name, x.version]), [['a', 'Ada', 4], ['b', 'b', 1]]);
  assert.equal(list.next_cursor, null, 'the rest of the page is kept');
  // The filtered list may gain or lose it: refetched.
  assert.deepEqual(stale(), ['["agents",{"status":"idle"}]']);
});

test('an event the cache already has (its own PATCH answer) changes nothing; a skipped version refetches', () => {
  const { qc, conn, stale } = cache();
  conn.emit('*', event('agent.updated', { id: 'a', name: 'a', version: 3, changed: ['status'] }));
  assert.deepEqual(stale(), [], 'version 3 is cached everywhere');
  conn.emit('*', event('agent.updated', { id: 'a', name: 'Zed', version: 5, changed: ['name'] }));
  assert.equal(qc.getQueryData(['agent', 'a']).name, 'a', 'version 4 was missed: not patched over it');
  assert.deepEqual(stale(), ['["agent","a"]', '["agents",{"status":"idle"}]', '["agents"]']);
});

test('inPlace: false refetches renames too; infinite lists and arrays are patched', () => {
  const qc = new QueryClient();
  qc.setQueryData(['agent', 'a'], agent('a', 1));
  qc.setQueryData(['agents'], { pages: [{ agents: [agent('b', 1)] }, { agents: [agent('a', 1)] }], pageParams: [null, 'x'] });
  const conn = standIn();
  syncAgents(qc, { connection: conn });
  conn.emit('*', event('agent.updated', { id: 'a', name: 'A', version: 2, changed: ['name'] }));
  const pages = qc.getQueryData(['agents']);
  assert.deepEqual(pages.pageParams, [null, 'x']);
  assert.deepEqual(pages.pages.map((p) => p.agents.map((x) => `${x.id}${x.version}${x.name}`)), [['b1b'], ['a2A']]);

  const off = new QueryClient();
  off.setQueryData(['agent', 'a'], agent('a', 1));
  off.setQueryData(['agents'], [agent('a', 1)]);
  const c2 = standIn();
  syncAgents(off, { connection: c2, inPlace: false, listKey: 'agents', detailKey: 'agent' });
  c2.emit('*', event('agent.updated', { id: 'a', name: 'A', version: 2, changed: ['name'] }));
  assert.equal(off.getQueryData(['agent', 'a']).name, 'a');
  assert.ok(off.getQueryState(['agent', 'a']).isInvalidated);
  assert.ok(off.getQueryState(['agents']).isInvalidated);
});

test('a resync and the first live connection invalidate every agent query, and only those; stop() detaches', () => {
  const { conn, stale, sync, qc } = cache();
  conn.state = 'live';
  conn.emit('state', 'live');
  assert.deepEqual(stale(), ['["agent","a"]', '["agents",{"status":"idle"}]', '["agents"]']);
  qc.clear();
  qc.setQueryData(['agent', 'a'], agent('a', 3));
  conn.emit('state', 'offline');
  conn.emit('state', 'live');
  assert.deepEqual(stale(), [], 'a resumed reconnect needs no refetch');
  conn.emit('resync', { reason: 'epoch' });
  assert.deepEqual(stale(), ['["agent","a"]']);
  // Not agent events: ignored.
  qc.clear();
  qc.setQueryData(['agents'], []);
  conn.emit('*', event('agent.created', { id: 'x' }, 'project:1'));
  conn.emit('*', event('note', { id: 'x' }));
  assert.deepEqual(stale(), []);
  sync.stop();
  assert.equal(conn.closed, false, 'a given connection stays open');
  conn.emit('*', event('agent.created', { id: 'y', name: 'y', version: 1 }));
  assert.deepEqual(stale(), []);
});

test('against the real hub: REST changes reach an active list query; a SIGKILL restart resumes; a new log refetches', async (t) => {
  const hub = await new Hub().start();
  t.after(() => hub.stop());
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false, staleTime: Infinity } } });
  let fetches = 0;
  const observer = new QueryObserver(qc, {
    queryKey: ['agents'],
    queryFn: async () => {
      fetches++;
      return (await hub.api('GET', '/api/agents')).body;
    },
  });
  let names = [];
  const unsubscribe = observer.subscribe((r) => (names = (r.data?.agents ?? []).map((a) => a.name)));
  t.after(unsubscribe);
  // Retries wait exactly 700 ms, so what is created right after the restart reaches the client by resume.
  const sync = syncAgents(qc, { url: hub.url, WebSocket, backoff: { base: 700, cap: 700 }, random: () => 1 });
  t.after(() => sync.stop());
  await until(() => sync.connection.state === 'live', 5000, 'live');

  const made = await hub.api('POST', '/api/agents', { name: 'first' });
  assert.equal(made.status, 201);
  await until(() => names.includes('first'), 5000, 'the list to show the new agent');
  const patched = await hub.api('PATCH', `/api/agents/${made.body.id}`, { status: 'busy' });
  assert.equal(patched.status, 200);
  await until(() => qc.getQueryData(['agents']).agents[0].status === 'busy', 5000, 'the change to be refetched');

  await hub.kill();
  await hub.start();
  await hub.api('POST', '/api/agents', { name: 'while-away' });
  assert.notEqual(sync.connection.state, 'live');
  await until(() => names.includes('while-away'), 5000, 'the agent created across the restart');

  await hub.kill();
  hub.newDir();
  await hub.start();
  const before = fetches;
  await until(() => names.length === 0, 5000, 'the empty list of the new log');
  assert.ok(fetches > before, 'refetched on resync');
});
