// dist/client.js in a real browser (headless Chromium, which the test command installs; CHROMIUM names another
// binary): a page on another localhost port imports it, connects to the hub with the browser's own WebSocket,
// publishes and receives, and uses the dev-webhook helpers through the browser's fetch (CORS) and EventSource.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Hub } from '../test-support/hub.mjs';

const chromium = [process.env.CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome']
  .find((p) => p && existsSync(p));

const page = `<!doctype html><meta charset="utf-8"><script type="module">
import { configure, connect, sendDevWebhook, subscribeToBackendEvents } from '/client.js';
const hub = new URLSearchParams(location.search).get('hub');
const report = (r) => fetch('/result', { method: 'POST', body: JSON.stringify(r) });
try {
  configure({ url: hub });
  const states = [];
  const conn = connect({ channels: ['browser'] });
  conn.on('state', (s) => states.push(s));
  const got = new Promise((resolve) => conn.on('hello', resolve));
  const backend = [];
  const stop = subscribeToBackendEvents((e) => backend.push(e));
  const ack = await conn.publish('browser', 'hello', { from: navigator.userAgent.includes('Chrome') ? 'chrome' : 'other' });
  const event = await got;
  // The EventSource may not be connected yet: send until it has seen one.
  let webhook, seen;
  for (let i = 0; i < 20 && !seen; i++) {
    webhook = await sendDevWebhook('from.browser', { n: i });
    await new Promise((r) => setTimeout(r, 150));
    seen = backend.find((e) => e.type === 'from.browser');
  }
  stop();
  conn.close();
  report({ ack, event, states, webhook, seen, lastSeq: conn.lastSeq, epoch: conn.epoch });
} catch (e) {
  report({ error: String(e && e.stack || e) });
}
</script>`;

test('in headless Chromium: native WebSocket, publish, receive, fetch and EventSource helpers', async (t) => {
  assert.ok(chromium, 'no Chromium: run the test command (scripts/test.sh), which installs it, or set CHROMIUM');
  const hub = await new Hub().start();
  t.after(() => hub.stop());
  const client = readFileSync(new URL('../dist/client.js', import.meta.url));
  let resolveResult;
  const result = new Promise((r) => (resolveResult = r));
  const server = createServer((req, res) => {
    if (req.url === '/client.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(client);
    } else if (req.url === '/result') {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        res.end('ok');
        resolveResult(JSON.parse(body));
      });
    } else res.writeHead(200, { 'content-type': 'text/html' }).end(page);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const profile = mkdtempSync(join(tmpdir(), 'switchboard-chromium-'));
  const url = `http://127.0.0.1:${server.address().port}/?hub=${encodeURIComponent(hub.url)}`;
  const browser = spawn(chromium, ['--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run',
    `--user-data-dir=${profile}`, url], { stdio: 'ignore', detached: true });
  t.after(() => {
    try {
      process.kill(-browser.pid, 'SIGKILL');
    } catch {
      // already gone
    }
    rmSync(profile, { recursive: true, force: true });
  });
  const r = await Promise.race([result, new Promise((_, no) => setTimeout(() => no(new Error('no result from the page')), 20000).unref())]);
  assert.equal(r.error, undefined, r.error);
  assert.equal(r.event.seq, r.ack.seq);
  assert.deepEqual(r.event.data, { from: 'chrome' });
  assert.equal(r.event.source, 'ws');
  assert.deepEqual(r.states, ['live', 'closed']);
  assert.deepEqual(r.webhook, { success: true, message: 'Webhook received: from.browser' });
  assert.equal(r.seen?.type, 'from.browser', 'the EventSource got the webhook event');
  assert.equal(typeof r.seen.data.n, 'number');
  assert.ok(!Number.isNaN(Date.parse(r.seen.timestamp)));
  assert.equal(r.lastSeq, r.ack.seq);
  assert.equal(r.epoch, (await hub.api('GET', '/health')).body.epoch);
});
