// The window in headless Debian Chromium (playwright-core), against the real hub at HUB_URL. Run by tests/ui.rs,
// which also holds an MCP `ask_user` call open for the question test. Screenshots go to ARTIFACTS.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const HUB = process.env.HUB_URL;
const TOKEN = process.env.HUB_TOKEN;
const ARTIFACTS = process.env.ARTIFACTS || 'artifacts';
let browser, page;
const pageErrors = [];

async function rest(method, path, body) {
  const res = await fetch(HUB + path, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

const publish = (channel, event, data = {}) => rest('POST', '/api/events', { channel, event, data });
const shown = () => page.textContent('#shown');
const visibleEvents = () => page.$$eval('#log .row:not([hidden])', (rows) => rows.map((r) => ({
  channel: r.children[2].textContent, event: r.children[3].textContent, source: r.children[1].textContent,
})));

async function setFilter(selector, value) {
  if (selector === '#f-source') await page.selectOption(selector, value);
  else await page.fill(selector, value);
}

before(async () => {
  assert.ok(HUB, 'HUB_URL must point at a running hub');
  mkdirSync(ARTIFACTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  await page.goto(HUB + '/');
  await page.waitForSelector('#s-conn.live', { timeout: 10_000 });
});

after(async () => {
  await browser?.close();
});


test('events published over REST appear within 1 s', async () => {
  const started = Date.now();
  const { status } = await publish('project:1', 'build.started', { branch: 'main' });
  assert.equal(status, 202);
  await page.waitForSelector('#log .row:not([hidden]) >> text=build.started', { timeout: 1000 });
  const took = Date.now() - started;
  console.log(`REST publish -> row visible in ${took} ms`);
  assert.ok(took < 1000);
});

test("the window is the owner's: it shows private-channel events and has the token", async () => {
  // Published with the token; a page on another origin could neither see it nor read the token.
  const res = await fetch(HUB + '/api/events', {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify({ channel: 'private-team', event: 'plan.shared', data: {} }),
  });
  assert.equal(res.status, 202);
  await page.waitForSelector('#log .row:not([hidden]) >> text=plan.shared', { timeout: 2000 });
  const own = await page.evaluate(() => fetch('/api/connect').then((r) => r.json()));
  assert.equal(own.token, TOKEN, 'the window gets the token');
  const other = await rest('GET', '/api/connect');
  assert.equal(other.body.token, null, 'a caller that is not the window and has no token does not');
  assert.ok(own.pusher.secret, 'the window gets the Pusher secret too');
  assert.equal(other.body.pusher.secret, null, 'nobody else does');
});

test('each filter narrows the list', async () => {
  await publish('project:2', 'build.done', { ok: true });
  await publish('agent:x', 'note.added', { text: 'needle in a haystack' });
  const hook = await rest('POST', '/api/dev/webhook', { event_type: 'deploy.finished', data: { env: 'prod' } });
  assert.equal(hook.status, 200);
  // A publish over the page's own WebSocket, so `ws` is a source too.
  await page.evaluate((hub) => new Promise((resolve, reject) => {
    const ws = new WebSocket(hub.replace(/^http/, 'ws') + '/ws');
    ws.onopen = () => ws.send(JSON.stringify({ type: 'publish', id: 1, channel: 'chat:1', event: 'said', data: { t: 'hi' } }));
    ws.onmessage = (m) => { if (JSON.parse(m.data).type === 'ack') { ws.close(); resolve(); } };
    ws.onerror = reject;
  }), HUB);
  await page.waitForSelector('#log .row:not([hidden]) >> text=said', { timeout: 2000 });

  const cases = [
    ['#f-channel', 'project:*', (e) => e.channel.startsWith('project:')],
    ['#f-channel', 'dev', (e) => e.channel === 'dev'],
    ['#f-event', 'build.*', (e) => e.event.startsWith('build.')],
    ['#f-source', 'webhook', (e) => e.source === 'webhook'],
    ['#f-source', 'ws', (e) => e.source === 'ws'],
    ['#f-text', 'NEEDLE', (e) => e.event === 'note.added'],
  ];
  for (const [selector, value, keep] of cases) {
    await setFilter(selector, value);
    await page.waitForFunction(() => /of \d+ events/.test(document.querySelector('#shown').textContent));
    const rows = await visibleEvents();
    assert.ok(rows.length > 0 && rows.every(keep), `${selector}=${value} shows ${JSON.stringify(rows)}`);
    const [n, total] = (await shown()).match(/\d+/g).map(Number);
    assert.ok(n < total, `${selector}=${value} did not narrow: ${await shown()}`);
    await setFilter(selector, '');
  }
  await page.waitForFunction(() => !/ of /.test(document.querySelector('#shown').textContent));
});

test('pause holds new events; resume catches up through since', async () => {
  await page.click('#pause');
  await page.waitForSelector('#s-conn.down');
  for (const n of [1, 2, 3]) await publish('paused', `while.paused.${n}`);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await page.$('#log .row >> text=while.paused.1'), null, 'a paused log shows nothing new');
  await page.click('#pause');
  await page.waitForSelector('#log .row:not([hidden]) >> text=while.paused.3', { timeout: 3000 });
  const order = (await visibleEvents()).filter((e) => e.channel === 'paused').map((e) => e.event);
  assert.deepEqual(order, ['while.paused.3', 'while.paused.2', 'while.paused.1'], 'every missed event, once, newest first');
});

test('a row opens its JSON detail', async () => {
  await page.click('#log .row:not([hidden]) >> text=build.started');
  await page.waitForSelector('#detail:not([hidden])');
  const detail = JSON.parse(await page.textContent('#detail-json'));
  assert.equal(detail.event, 'build.started');
  assert.deepEqual(detail.data, { branch: 'main' });
  assert.ok(detail.seq > 0 && detail.ts && detail.id);
  await page.click('#detail-close');
});

test('a pending ask_user question is answered from the window', async () => {
  await page.waitForSelector('#question-count:not([hidden])', { timeout: 10_000 });
  await page.click('[data-tab=questions]');
  const q = await page.waitForSelector('.question >> text=Which database?');
  assert.ok(q);
  await page.fill('.question textarea', 'Postgres, from the window');
  await page.click('.question button');
  await page.waitForSelector('#questions-empty:not([hidden])', { timeout: 5000 });
  await page.click('[data-tab=events]');
});

test('the Connect panel shows URLs, a masked token and IDE snippets', async () => {
  await page.click('[data-tab=connect]');
  await page.waitForFunction(() => document.querySelector('#c-ide-text').textContent.includes('switchboard'));
  assert.match(await page.textContent('#c-ws'), /^ws:\/\/127\.0\.0\.1:\d+\/ws/);
  assert.match(await page.textContent('#c-token'), /^•+.{4}$/);
  assert.match(await page.textContent('#c-sio'), /socket\.io-client/);
  assert.match(await page.textContent('#c-pusher'), /new Pusher\('[0-9a-f]+'/);
  assert.match(await page.textContent('#c-pusher-secret'), /^•+.{4}$/);
  await page.selectOption('#c-ide', 'vscode');
  await page.waitForFunction(() => document.querySelector('#c-ide-text').textContent.includes('"servers"'));
  await page.check('#c-ide-http');
  await page.waitForFunction(() => document.querySelector('#c-ide-text').textContent.includes('/mcp'));
  await page.screenshot({ path: join(ARTIFACTS, 'connect.png') });
  await page.click('[data-tab=events]');
});

test('the Agents panel is a live table', async () => {
  const { body: a } = await rest('POST', '/api/agents', { name: 'ui-agent', model: 'm1', tags: ['ui'] });
  await page.click('[data-tab=agents]');
  const row = `#agents tr[data-id="${a.id}"]`;
  await page.waitForSelector(row, { timeout: 2000 });
  await rest('PATCH', `/api/agents/${a.id}`, { status: 'running' });
  await page.waitForSelector(`${row} >> text=running`, { timeout: 2000 });
  await rest('DELETE', `/api/agents/${a.id}`);
  await page.waitForSelector(row, { state: 'detached', timeout: 2000 });
  // A Pusher presence member, joined from the page (the window is the owner, so /pusher/auth signs for it).
  await page.evaluate(async () => {
    const cfg = await (await fetch('/api/pusher/config')).json();
    const ws = new WebSocket(`${location.origin.replace('http', 'ws')}/app/${cfg.key}?protocol=7`);
    window.presenceSocket = ws;
    const established = await new Promise((resolve) => { ws.onmessage = (m) => resolve(JSON.parse(m.data)); });
    const socketId = JSON.parse(established.data).socket_id;
    const auth = await (await fetch('/pusher/auth', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ socket_id: socketId, channel_name: 'presence-lobby', user_id: 'ann' }),
    })).json();
    ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: 'presence-lobby', ...auth } }));
  });
  await page.click('[data-tab=clients]');
  await page.waitForSelector('#clients tr >> text=window-', { timeout: 3000 });
  await page.waitForSelector('#clients tr >> text=presence-lobby as ann', { timeout: 5000 });
  await page.evaluate(() => window.presenceSocket.close());
  await page.click('[data-tab=events]');
});

test('after 10 000 events a row opens its detail in under 200 ms', async () => {
  const total = 10_000;
  let next = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < total) {
      const i = next++;
      const r = await publish(`load:${i % 50}`, 'load.tick', { i, note: 'x'.repeat(40) });
      assert.equal(r.status, 202);
    }
  }));
  await page.waitForFunction((n) => Number(document.querySelector('#shown').textContent.match(/\d+/)[0]) >= n, total, { timeout: 30_000 });
  await page.evaluate(() => { document.querySelector('#log').scrollTop = 40 * 26; });
  await page.waitForTimeout(100);
  const ms = await page.evaluate(async () => {
    const row = [...document.querySelectorAll('#log .row:not([hidden])')][3];
    const seq = row.dataset.seq;
    const t0 = performance.now();
    row.click();
    await new Promise((r) => requestAnimationFrame(() => r()));
    const detail = document.querySelector('#detail');
    if (detail.hidden || !document.querySelector('#detail-json').textContent.includes(`"seq": ${seq}`)) throw new Error('detail did not open');
    return performance.now() - t0;
  });
  console.log(`detail opened in ${ms.toFixed(1)} ms with ${await shown()}`);
  assert.ok(ms < 200, `detail took ${ms} ms`);
  await page.screenshot({ path: join(ARTIFACTS, 'window.png') });
});

test('the page raised no errors along the way', () => {
  assert.deepEqual(pageErrors, []);
});
