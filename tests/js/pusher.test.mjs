// pusher-js 8 and the `pusher` server SDK 5, unmodified, against the real binary (SPEC §7): public, private and
// presence channels, the hub's channel spelling (agent:<id> is agent;<id>), client events, sign-in, the signed
// HTTP API, refusals as the official clients surface them, recovery after the hub is SIGKILLed, and the slow
// consumer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Pusher from 'pusher-js';
import PusherServer from 'pusher';
import WebSocket from 'ws';
import { Hub, PUSHER, jwt, sleep, until } from './hub.mjs';

let hub;
before(async () => { hub = await new Hub(['--queue-capacity', '256']).start(); });
after(async () => { await hub.stop(); });

const clients = [];
after(() => { for (const c of clients) c.disconnect(); });

/** A connected pusher-js client. */
async function client(extra = {}) {
  const p = new Pusher(PUSHER.key, hub.pusherOptions(extra));
  clients.push(p);
  await new Promise((resolve, reject) => {
    p.connection.bind('connected', resolve);
    p.connection.bind('failed', reject);
  });
  return p;
}

/** Subscribes and waits for pusher:subscription_succeeded (or rejects with the subscription error). */
function subscribed(p, name) {
  const ch = p.subscribe(name);
  return new Promise((resolve, reject) => {
    ch.bind('pusher:subscription_succeeded', (members) => resolve({ ch, members }));
    ch.bind('pusher:subscription_error', (e) => reject(Object.assign(new Error('subscription_error'), { data: e })));
  });
}

/** Everything a channel receives, by event name. */
function record(ch) {
  const got = [];
  ch.bind_global((event, data) => { if (!event.startsWith('pusher')) got.push({ event, data }); });
  return got;
}

function sdk(over = {}) {
  return new PusherServer({
    appId: PUSHER.appId, key: PUSHER.key, secret: PUSHER.secret,
    host: '127.0.0.1', port: String(hub.port), useTLS: false, ...over,
  });
}

test('pusher-js: connection_established, public channels in the hub spelling, REST, MCP and SDK events', { timeout: 20_000 }, async () => {
  const p = await client();
  assert.match(p.connection.socket_id, /^\d+\.\d+$/);
  const created = await hub.api('POST', '/api/agents', { name: 'pusher-agent' });
  const id = created.body.id;
  const { ch } = await subscribed(p, `agent;${id}`);
  const got = record(ch);
  const other = await subscribed(p, 'project;acme');
  const gotProject = record(other.ch);

  const patched = await hub.api('PATCH', `/api/agents/${id}`, { status: 'busy' });
  assert.equal(patched.status, 200);
  const mcp = await hub.mcp();
  const byMcp = await mcp.callTool({ name: 'update_agent', arguments: { id, status: 'done' } });
  assert.ok(!byMcp.isError, JSON.stringify(byMcp));
  await mcp.close();
  await until(() => got.length === 2, 3000, 'the REST and MCP updates');
  assert.deepEqual(got.map((g) => [g.event, g.data.version]), [['agent.updated', 2], ['agent.updated', 3]]);

  // The server SDK reaches project:acme as project;acme, and data round-trips as Pusher sends it.
  const res = await sdk().trigger('project;acme', 'build.done', { ok: true, n: 7 });
  assert.equal(res.status, 200);
  await until(() => gotProject.length === 1, 3000, 'the SDK event');
  assert.deepEqual(gotProject[0], { event: 'build.done', data: { ok: true, n: 7 } });
  const logged = await hub.api('GET', '/api/events?channel=project:acme&limit=1', undefined, { token: true });
  assert.equal(logged.body.events[0].source, 'pusher');
  assert.deepEqual(logged.body.events[0].data, { ok: true, n: 7 });

  // socket_id leaves the triggering connection out.
  await sdk().trigger('project;acme', 'not.me', { x: 1 }, { socket_id: p.connection.socket_id });
  await sdk().trigger('project;acme', 'marker', {});
  await until(() => gotProject.some((g) => g.event === 'marker'), 3000, 'the marker');
  assert.ok(!gotProject.some((g) => g.event === 'not.me'), 'socket_id excluded this connection');

  const cfg = await hub.api('GET', '/api/pusher/config');
  assert.equal(cfg.body.key, PUSHER.key);
  assert.equal(cfg.body.app_id, PUSHER.appId);
  assert.ok(!JSON.stringify(cfg.body).includes(PUSHER.secret), 'the config never shows the secret');
});

test('pusher-js: private and presence channels, members, client events, sign-in, and the channel API', { timeout: 30_000 }, async () => {
  const params = (user, name) => ({ params: { user_id: user, user_info: JSON.stringify({ name }) } });
  const ann = await client({ channelAuthorization: { ...hub.pusherOptions().channelAuthorization, ...params('ann', 'Ann') } });
  const bob = await client({ channelAuthorization: { ...hub.pusherOptions().channelAuthorization, ...params('bob', 'Bob') } });

  const a = await subscribed(ann, 'presence-room');
  assert.equal(a.members.count, 1);
  assert.deepEqual(a.members.me, { id: 'ann', info: { name: 'Ann' } });
  const added = new Promise((resolve) => a.ch.bind('pusher:member_added', resolve));
  const b = await subscribed(bob, 'presence-room');
  assert.equal(b.members.count, 2);
  assert.deepEqual(b.members.get('ann').info, { name: 'Ann' });
  assert.deepEqual(await added, { id: 'bob', info: { name: 'Bob' } });

  // The hub shows the members, and the Pusher HTTP API counts them.
  const chan = await hub.api('GET', '/api/channels/presence-room', undefined, { token: true });
  assert.deepEqual(chan.body.members.map((m) => m.user_id), ['ann', 'bob']);
  const users = await sdk().get({ path: '/channels/presence-room/users' });
  assert.deepEqual((await users.json()).users, [{ id: 'ann' }, { id: 'bob' }]);
  const info = await sdk().get({ path: '/channels/presence-room', params: { info: 'user_count,subscription_count' } });
  const infoBody = await info.json();
  assert.equal(infoBody.occupied, true);
  assert.equal(infoBody.user_count, 2);
  // Connections an event there reaches: ann, bob, and any pattern subscriber (an MCP session follows `*`).
  assert.ok(infoBody.subscription_count >= 2, JSON.stringify(infoBody));
  const list = await sdk().get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } });
  assert.deepEqual(await list.json(), { channels: { 'presence-room': { user_count: 2 } } });

  // Client events: delivered to the others on the channel, never echoed to the sender; logged like any event.
  const bobGot = record(b.ch);
  const annGot = record(a.ch);
  assert.ok(a.ch.trigger('client-typing', { who: 'ann' }));
  await until(() => bobGot.some((g) => g.event === 'client-typing'), 3000, 'bob to get the client event');
  assert.deepEqual(bobGot.find((g) => g.event === 'client-typing').data, { who: 'ann' });
  const priv = await subscribed(bob, 'private-team');
  const annPriv = await subscribed(ann, 'private-team');
  const annPrivGot = record(annPriv.ch);
  priv.ch.trigger('client-ping', { n: 1 });
  await until(() => annPrivGot.length === 1, 3000, 'the private client event');
  await sleep(200);
  assert.ok(!annGot.some((g) => g.event === 'client-typing'), 'not echoed to the sender');
  const logged = await hub.api('GET', '/api/events?channel=private-team&limit=5', undefined, { token: true });
  assert.equal(logged.body.events.at(-1).event, 'client-ping');
  assert.equal(logged.body.events.at(-1).source, 'pusher');

  // Leaving: bob's connection goes, ann sees member_removed.
  const removed = new Promise((resolve) => a.ch.bind('pusher:member_removed', resolve));
  bob.disconnect();
  assert.equal((await removed).id, 'bob');
  await until(async () => {
    const c = await hub.api('GET', '/api/channels/presence-room', undefined, { token: true });
    return c.body.members?.length === 1;
  }, 3000, 'bob to leave the member list');

  // Sign-in, then terminate_connections closes that user's connections.
  const carl = await client({
    userAuthentication: { ...hub.pusherOptions().userAuthentication, params: { user_data: JSON.stringify({ id: 'carl' }) } },
  });
  carl.signin();
  await carl.user.signinDonePromise;
  assert.equal(carl.user.user_data.id, 'carl');
  const clientsNow = await hub.api('GET', '/api/clients', undefined, { token: true });
  assert.ok(clientsNow.body.clients.some((c) => c.signed_in_as === 'carl'));
  const closed = new Promise((resolve) => carl.connection.bind('state_change', (s) => { if (s.current !== 'connected') resolve(s.current); }));
  const term = await sdk().terminateUserConnections('carl');
  assert.equal(term.status, 200);
  await closed;
});

test('pusher: refusals surface as the official clients show them', { timeout: 20_000 }, async () => {
  // A forged channel signature: pusher:subscription_error, AuthError.
  const forged = await client({
    channelAuthorization: { customHandler: (_params, cb) => cb(null, { auth: `${PUSHER.key}:${'0'.repeat(64)}` }) },
  });
  const err = await subscribed(forged, 'private-vault').catch((e) => e.data);
  assert.equal(err.type, 'AuthError');
  assert.equal(err.status, 403);

  // A private channel outside a JWT's claims: /pusher/auth answers 403, which pusher-js reports.
  const token = jwt(hub.token, { sub: 'u1', channels: ['private-a'] });
  const limited = await client({
    channelAuthorization: { endpoint: `${hub.url}/pusher/auth`, transport: 'ajax', headers: { authorization: `Bearer ${token}` } },
  });
  await subscribed(limited, 'private-a');
  const outside = await subscribed(limited, 'private-b').catch((e) => e.data);
  assert.equal(outside.type, 'AuthError');
  assert.equal(outside.status, 403);

  // A client event on a public channel: pusher:error on the connection, and nothing is published.
  const pub = await client();
  const { ch } = await subscribed(pub, 'lobby');
  const connErr = new Promise((resolve) => pub.connection.bind('error', resolve));
  ch.trigger('client-nope', { x: 1 });
  const e = await connErr;
  assert.match(e.data.message, /private- and presence-/);
  const none = await hub.api('GET', '/api/events?channel=lobby', undefined, { token: true });
  assert.equal(none.body.events.length, 0);

  // A wrong key: pusher:error 4001, and pusher-js stops (40xx: no reconnect).
  const wrong = new Pusher('not-the-key', hub.pusherOptions());
  clients.push(wrong);
  const refused = await new Promise((resolve) => wrong.connection.bind('error', resolve));
  assert.equal(refused.error.data.code, 4001);
  await until(() => wrong.connection.state === 'disconnected', 3000, 'pusher-js to give up');

  // The HTTP API: a forged signature, and a stale one, are 401 and publish nothing.
  const bad = await sdk({ secret: 'not-the-secret' }).trigger('lobby', 'forged', {}).catch((x) => x);
  assert.equal(bad.status, 401);
  const realNow = Date.now;
  Date.now = () => realNow() - 3_600_000;
  const stale = await sdk().trigger('lobby', 'stale', {}).catch((x) => x).finally(() => { Date.now = realNow; });
  assert.equal(stale.status, 401);
  assert.match(stale.body, /600 s/);
  const still = await hub.api('GET', '/api/events?channel=lobby', undefined, { token: true });
  assert.equal(still.body.events.length, 0, 'refused requests publish nothing');
});

test('pusher: client events are rate-limited with 4301', { timeout: 20_000 }, async () => {
  const a = await client();
  const { ch } = await subscribed(a, 'private-flood');
  const errors = [];
  a.connection.bind('error', (e) => errors.push(e));
  for (let i = 0; i < 400; i++) ch.trigger('client-x', { i });
  await until(() => errors.some((e) => e.data?.code === 4301), 5000, 'a 4301 error');
  assert.equal(a.connection.state, 'connected', 'the connection stays open');
});

test('pusher-js: after the hub is SIGKILLed and restarted it reconnects and resubscribes by itself; the log holds what it missed', { timeout: 60_000 }, async () => {
  // Pusher's protocol has no resume: pusher-js reconnects and resubscribes, and the app refetches what it missed
  // (here from /api/events). What it does get live arrives once, in order.
  const p = await client();
  const { ch } = await subscribed(p, 'resume;p');
  const live = [];
  ch.bind('tick', (d) => live.push(d.i));
  const tick = async (i) => {
    const r = await hub.api('POST', '/api/events', { channel: 'resume:p', event: 'tick', data: { i } });
    assert.equal(r.status, 202);
  };
  for (let i = 0; i < 5; i++) await tick(i);
  await until(() => live.length === 5, 3000, 'the first ticks');
  const lastSeen = (await hub.api('GET', '/api/events?channel=resume:p&limit=1', undefined, { token: true })).body.last_seq;

  await hub.kill();
  await hub.start();
  for (let i = 5; i < 10; i++) await tick(i);
  await new Promise((resolve) => ch.bind('pusher:subscription_succeeded', resolve));
  for (let i = 10; i < 15; i++) await tick(i);
  await until(() => live.includes(14), 10_000, 'live ticks after the restart');

  assert.equal(new Set(live).size, live.length, 'no duplicates');
  assert.deepEqual(live, [...live].sort((x, y) => x - y), 'in order');
  const missed = await hub.api('GET', `/api/events?channel=resume:p&since=${lastSeen}`, undefined, { token: true });
  const all = new Set([...live, ...missed.body.events.map((e) => e.data.i)]);
  assert.equal(all.size, 15, 'live plus the refetched log: every tick');
});

test('pusher: a connection that stops reading is closed with 4100, and nobody else waits', { timeout: 90_000 }, async () => {
  // pusher-js hides its socket, so the slow reader is the `ws` package speaking the Pusher protocol.
  const slow = new WebSocket(`${hub.url.replace('http', 'ws')}/app/${PUSHER.key}?protocol=7&client=js&version=8.4.0`);
  const frames = [];
  slow.on('message', (m) => frames.push(JSON.parse(m.toString())));
  await until(() => frames.some((f) => f.event === 'pusher:connection_established'), 3000, 'established');
  const est = JSON.parse(frames[0].data);
  assert.equal(est.activity_timeout, 30);
  slow.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: 'flood' } }));
  await until(() => frames.some((f) => f.event === 'pusher_internal:subscription_succeeded'), 3000, 'subscribed');
  const closed = new Promise((resolve) => slow.on('close', (code) => resolve(code)));

  const fast = await client();
  const { ch } = await subscribed(fast, 'flood');
  let fastCount = 0;
  ch.bind('bulk', () => { fastCount++; });
  slow._socket.pause();
  // The hub waits 5 s for a cut-off client to take its close frame, so the slow client reads again as soon as it is
  // cut off, while the flood goes on, rather than after it.
  const cutOff = until(async () => {
    const { clients: list } = (await hub.api('GET', '/api/clients', undefined, { token: true })).body;
    return list.filter((c) => c.transport === 'pusher' && c.subscriptions.includes('flood')).length === 1;
  }, 40_000, 'the slow connection to be cut off').then(() => slow._socket.resume());
  const payload = 'z'.repeat(16 * 1024);
  for (let k = 0; k < 2000; k += 8) {
    await Promise.all(Array.from({ length: 8 }, (_, j) =>
      hub.api('POST', '/api/events', { channel: 'flood', event: 'bulk', data: { i: k + j, payload } })));
  }
  await until(() => fastCount === 2000, 30_000, 'the fast client to get everything');
  await cutOff;
  assert.equal(await closed, 4100);
});

test('pusher: on a --require-token hub a connection (which cannot present the token) is refused with 4009; the signed HTTP API works', { timeout: 20_000 }, async () => {
  const locked = await new Hub(['--require-token']).start();
  try {
    const p = new Pusher(PUSHER.key, locked.pusherOptions());
    clients.push(p);
    const refused = await new Promise((resolve) => p.connection.bind('error', resolve));
    assert.equal(refused.error.data.code, 4009);
    await until(() => p.connection.state === 'disconnected', 3000, 'pusher-js to give up');
    const server = new PusherServer({ appId: PUSHER.appId, key: PUSHER.key, secret: PUSHER.secret, host: '127.0.0.1', port: String(locked.port), useTLS: false });
    assert.equal((await server.trigger('lobby', 'signed', { ok: 1 })).status, 200);
    const log = await locked.api('GET', '/api/events?channel=lobby', undefined, { token: true });
    assert.equal(log.body.events[0].event, 'signed');
  } finally {
    await locked.stop();
  }
});
