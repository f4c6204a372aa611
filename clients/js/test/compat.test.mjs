// The dev-webhook compatibility helpers (sendDevWebhook, subscribeToBackendEvents) and configure(), against a real
// hub that requires its token; on Node 20 subscribeToBackendEvents reads the SSE stream with fetch.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { configure, connect, sendDevWebhook, subscribeToBackendEvents } from '../dist/client.js';
import { Hub, WebSocket, until } from '../test-support/hub.mjs';

test('sendDevWebhook and subscribeToBackendEvents keep the old shapes; configure() gives URL and token', async (t) => {
  const hub = await new Hub(['--require-token']).start();
  t.after(() => hub.stop());

  configure({ url: hub.url, token: 'wrong' });
  const refused = await sendDevWebhook('build.done', { ok: true });
  assert.equal(refused.success, false);
  assert.equal(typeof refused.message, 'string');

  configure({ url: hub.url, token: hub.token, WebSocket });
  const got = [];
  const stop = subscribeToBackendEvents((e) => got.push(e));
  t.after(stop);
  await until(async () => (await hub.api('GET', '/api/clients')).body.clients.some((c) => c.transport === 'sse'), 5000, 'the stream');

  const res = await sendDevWebhook('build.done', { ok: true });
  assert.deepEqual(res, { success: true, message: 'Webhook received: build.done' });
  await hub.publish('project:1', 'note', { n: 1 });
  await until(() => got.length === 2, 5000, 'two events');
  assert.deepEqual(got.map(({ type, data }) => ({ type, data })), [
    { type: 'build.done', data: { ok: true } },
    { type: 'note', data: { n: 1 } },
  ]);
  // non-empty: the deepEqual above has two
  assert.ok(got.every((e) => !Number.isNaN(Date.parse(e.timestamp))));
  const log = (await hub.api('GET', '/api/events?channel=dev&since=0')).body.events;
  assert.deepEqual(log.map((e) => [e.event, e.source]), [['build.done', 'webhook']]);

  stop();
  await until(async () => !(await hub.api('GET', '/api/clients')).body.clients.some((c) => c.transport === 'sse'), 5000, 'stream closed');
  await sendDevWebhook('after.stop', {});
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(got.length, 2, 'nothing after unsubscribing');

  // connect() takes URL, token and WebSocket from configure() too, and the token gets it in.
  const conn = connect({ channels: ['dev'] });
  t.after(() => conn.close());
  const events = [];
  conn.on('*', (e) => events.push(e.event));
  await until(() => conn.state === 'live', 5000, 'live with the token');
  await sendDevWebhook('deploy.started', { env: 'dev' });
  await until(() => events.includes('deploy.started'), 5000, 'webhook event over WebSocket');
});

test('subscribeToBackendEvents follows the hub across a restart (Last-Event-ID), as EventSource would', async (t) => {
  const hub = await new Hub().start();
  t.after(() => hub.stop());
  configure({ url: hub.url, token: undefined });
  const got = [];
  const stop = subscribeToBackendEvents((e) => got.push(e.data.n));
  t.after(stop);
  await until(async () => (await hub.api('GET', '/api/clients')).body.clients.some((c) => c.transport === 'sse'), 5000, 'the stream');
  await sendDevWebhook('n', { n: 1 });
  await until(() => got.length === 1, 5000, 'first');
  await hub.kill();
  await hub.start();
  await sendDevWebhook('n', { n: 2 }); // before the stream is back: it comes through Last-Event-ID
  await until(() => got.length === 2, 5000, 'second, after the restart');
  await sendDevWebhook('n', { n: 3 });
  await until(() => got.length === 3, 5000, 'third');
  assert.deepEqual(got, [1, 2, 3]);
});

test('an EventSource given to configure() is used, with the token in the URL', async () => {
  const made = [];
  class FakeES {
    constructor(url) {
      this.url = new URL(url);
      this.onmessage = null;
      this.closed = false;
      made.push(this);
    }
    close() {
      this.closed = true;
    }
  }
  configure({ url: 'ws://127.0.0.1:9/ws', token: 'tk', EventSource: FakeES });
  const got = [];
  const stop = subscribeToBackendEvents((e) => got.push(e));
  const [es] = made;
  assert.equal(es.url.href, 'http://127.0.0.1:9/api/dev/events?token=tk');
  es.onmessage({ data: JSON.stringify({ type: 'connected', message: 'SSE connected' }) });
  es.onmessage({ data: JSON.stringify({ type: 'x', data: 1, timestamp: 't' }) });
  assert.deepEqual(got, [{ type: 'x', data: 1, timestamp: 't' }], 'the greeting is not an event');
  stop();
  assert.ok(es.closed);
  configure({ EventSource: undefined });
});
