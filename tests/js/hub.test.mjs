// Node clients against the real binary: the `ws` package (resume with ?since=) and the `eventsource` package
// (unnamed messages, id = seq, Last-Event-ID resume, the dev-webhook stream). SWITCHBOARD_BIN names the binary.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import WebSocket from 'ws';
import { EventSource } from 'eventsource';
import { storeArgs } from './store.mjs';

const BIN = process.env.SWITCHBOARD_BIN;
let hub, url, dir;

before(async () => {
  assert.ok(BIN, 'SWITCHBOARD_BIN must name the switchboard binary');
  dir = mkdtempSync(join(tmpdir(), 'switchboard-js-'));
  hub = spawn(BIN, ['serve', '--port', '0', '--data-dir', dir, ...storeArgs(dir)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise((resolve, reject) => {
    createInterface({ input: hub.stdout }).once('line', resolve);
    hub.once('exit', (code) => reject(new Error(`hub exited with ${code}`)));
  });
  url = line.match(/^switchboard listening on (http:\/\/\S+)$/)[1];
});

after(() => {
  hub.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
});

async function api(method, path, body) {
  const res = await fetch(url + path, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** Collects JSON frames of a `ws` socket; `next(type)` resolves with the next frame of that type. */
function frames(ws) {
  const queue = [];
  const waiters = [];
  ws.on('message', (raw) => {
    queue.push(JSON.parse(raw.toString()));
    while (waiters.length) waiters.shift()();
  });
  return async function next(type, ms = 5000) {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = queue.findIndex((f) => f.type === type);
      if (i >= 0) return queue.splice(0, i + 1).pop();
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${type} frame within ${ms} ms`);
      await new Promise((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, left);
      });
    }
  };
}

function open(path) {
  const ws = new WebSocket(url.replace('http', 'ws') + path);
  const next = frames(ws);
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws, next }));
    ws.once('error', reject);
  });
}

test('ws: live events, then resume with ?since= gets exactly the missed ones', { timeout: 20_000 }, async () => {
  const { ws, next } = await open('/ws?channels=agent:*');
  const hello = await next('connected');
  assert.equal(hello.heartbeat_s, 25);
  assert.ok(hello.epoch && hello.connection_id);

  const created = await api('POST', '/api/agents', { name: 'from-node' });
  assert.equal(created.status, 201);
  const ev = await next('event');
  assert.equal(ev.event, 'agent.created');
  assert.equal(ev.data.id, created.body.id);
  assert.equal(ev.source, 'rest');
  ws.close();

  for (const status of ['busy', 'idle', 'done']) {
    const r = await api('PATCH', `/api/agents/${created.body.id}`, { status });
    assert.equal(r.status, 200);
  }
  const again = await open(`/ws?channels=agent:*&since=${ev.seq}`);
  const ack = await again.next('ack');
  assert.equal(ack.recovered, true);
  const got = [];
  for (let i = 0; i < 3; i++) got.push(await again.next('event'));
  assert.deepEqual(got.map((e) => e.seq), [ev.seq + 1, ev.seq + 2, ev.seq + 3]);
  assert.deepEqual(got.map((e) => e.data.version), [2, 3, 4]);
  assert.deepEqual(got[0].data.changed, ['status']);

  again.ws.send('{"type":"publish"');
  const err = await again.next('error');
  assert.equal(err.error.code, 'bad_frame');
  again.ws.send(JSON.stringify({ type: 'ping', id: 'p' }));
  assert.equal((await again.next('pong')).id, 'p');
  again.ws.close();
});

test('eventsource: unnamed messages with id = seq, and Last-Event-ID resume', { timeout: 20_000 }, async () => {
  const seen = [];
  const es = new EventSource(`${url}/events?channels=node:*`);
  // The handler is in place before anything is published, so no message can slip past it.
  const three = new Promise((resolve) => {
    es.onmessage = (m) => {
      seen.push({ id: m.lastEventId, env: JSON.parse(m.data) });
      if (seen.length === 3) resolve();
    };
  });
  await new Promise((resolve, reject) => {
    es.onopen = resolve;
    es.onerror = reject;
  });
  for (let i = 0; i < 3; i++) {
    const r = await api('POST', '/api/events', { channel: `node:${i}`, event: 'tick', data: { i } });
    assert.equal(r.status, 202);
  }
  await three;
  es.close();
  assert.deepEqual(seen.map((s) => s.env.data.i), [0, 1, 2]);
  for (const s of seen) assert.equal(s.id, String(s.env.seq));

  await api('POST', '/api/events', { channel: 'node:9', event: 'missed', data: null });
  // Resume the way EventSource does after a drop: Last-Event-ID on the request.
  const lastId = seen[2].id;
  const resumed = new EventSource(`${url}/events?channels=node:*`, {
    fetch: (input, init) => fetch(input, { ...init, headers: { ...init.headers, 'Last-Event-ID': lastId } }),
  });
  const first = await new Promise((resolve) => {
    resumed.onmessage = (m) => resolve(JSON.parse(m.data));
  });
  resumed.close();
  assert.equal(first.event, 'missed');
  assert.equal(first.seq, Number(lastId) + 1);
});

test('eventsource: the dev-webhook stream says connected, then {type, data, timestamp}', { timeout: 20_000 }, async () => {
  const es = new EventSource(`${url}/api/dev/events`);
  const msgs = [];
  // The subscription exists before the connected message is sent, so publish only after it arrives.
  await new Promise((resolve) => {
    es.onmessage = (m) => {
      msgs.push(JSON.parse(m.data));
      resolve();
    };
  });
  const done = new Promise((resolve) => {
    es.onmessage = (m) => {
      msgs.push(JSON.parse(m.data));
      resolve();
    };
  });
  const r = await api('POST', '/api/dev/trigger', { event_type: 'agent_status', data: { ok: true } });
  assert.equal(r.status, 200);
  assert.equal(r.body.success, true);
  await done;
  es.close();
  assert.deepEqual(msgs[0], { type: 'connected', message: 'SSE connected' });
  assert.equal(msgs[1].type, 'agent_status');
  assert.deepEqual(msgs[1].data, { ok: true });
  assert.match(msgs[1].timestamp, /Z$/);
});
