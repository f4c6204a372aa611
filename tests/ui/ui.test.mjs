// The window in headless Debian Chromium (playwright-core), against the real hub at HUB_URL. Run by tests/ui.rs,
// which also holds an MCP `ask_user` call open for the question test, and starts a second hub that nothing publishes
// to (EMPTY_HUB_URL) for the empty state. Screenshots go to ARTIFACTS.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const HUB = process.env.HUB_URL;
const TOKEN = process.env.HUB_TOKEN;
const EMPTY_HUB = process.env.EMPTY_HUB_URL;
const ARTIFACTS = process.env.ARTIFACTS || 'artifacts';
let browser, page;
const pageErrors = [];

async function rest(method, path, body, hub = HUB, token = undefined) {
  const res = await fetch(hub + path, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

const publish = (channel, event, data = {}) => rest('POST', '/api/events', { channel, event, data });
// What only the hub's owner may do (its window, or a caller with the token), such as changing the watched folders.
const asOwner = (method, path, body) => rest(method, path, body, HUB, TOKEN);
const shown = () => page.textContent('#shown');
const visibleEvents = () => page.$$eval('#log .row:not([hidden])', (rows) => rows.map((r) => ({
  channel: r.children[2].textContent, event: r.children[3].textContent, source: r.children[1].textContent,
})));

// Polls `probe` until it returns something truthy.
async function eventually(probe, what, ms = 3000) {
  const until = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

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

test('an empty hub says what to do next: the snippet to connect and the command to add the IDE', async () => {
  assert.ok(EMPTY_HUB, 'EMPTY_HUB_URL must point at a second hub with an empty log');
  const fresh = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  fresh.on('pageerror', (e) => pageErrors.push(String(e)));
  await fresh.goto(EMPTY_HUB + '/');
  await fresh.waitForSelector('#s-conn.live', { timeout: 10_000 });
  await fresh.waitForSelector('#log-empty:not([hidden])', { timeout: 2000 });
  await fresh.waitForFunction(() => document.querySelector('#e-ide').textContent.startsWith('claude mcp add'));
  const ide = (await rest('GET', '/api/ide/claude', undefined, EMPTY_HUB)).body;
  assert.equal(await fresh.textContent('#e-ide'), ide.text, "the hub's own `claude mcp add` line");
  const snippet = await fresh.textContent('#e-js');
  assert.ok(snippet.includes(`new WebSocket('${EMPTY_HUB.replace(/^http/, 'ws')}/ws?channels=agent:*`), snippet);
  await fresh.screenshot({ path: join(ARTIFACTS, 'empty.png') });

  // The same snippet as the Connect panel's, and the other empty views point to the next step too.
  await fresh.click('[data-tab=connect]');
  await fresh.waitForFunction(() => document.querySelector('#c-js').textContent !== '');
  assert.equal(await fresh.textContent('#c-js'), snippet);
  await fresh.click('[data-tab=agents]');
  assert.match(await fresh.textContent('#agents-empty'), /create_agent/);
  await fresh.click('[data-tab=clients]');
  await fresh.waitForSelector('#clients-empty:not([hidden])', { timeout: 3000 });
  await fresh.click('[data-tab=events]');

  // The snippet works as shown: run it in the page, then create an agent; the first event replaces the empty state.
  await fresh.evaluate((code) => {
    window.seen = [];
    const console = { log: (...args) => window.seen.push(args) }; // what the snippet logs, for the test to read
    eval(code); // a direct eval: the snippet's `console` is the one above
  }, snippet);
  await eventually(async () => (await rest('GET', '/api/clients', undefined, EMPTY_HUB)).body.clients.length >= 2, 'the snippet connecting');
  const created = await rest('POST', '/api/agents', { name: 'first' }, EMPTY_HUB);
  assert.equal(created.status, 201);
  await fresh.waitForFunction(() => window.seen.some(([, event]) => event === 'agent.created'), null, { timeout: 2000 });
  await fresh.waitForSelector('#log-empty', { state: 'hidden', timeout: 2000 });
  await fresh.waitForSelector('#log .row:not([hidden]) >> text=agent.created', { timeout: 2000 });
  await fresh.close();
});

test('the plot shows events per second by channel, live', async () => {
  const plot = () => page.$eval('#plot', (n) => ({ total: Number(n.dataset.total), series: JSON.parse(n.dataset.series) }));
  const before = await plot();
  for (let i = 0; i < 3; i++) assert.equal((await publish('plot:a', 'tick', { i })).status, 202);
  for (let i = 0; i < 5; i++) assert.equal((await publish('plot:b', 'tick', { i })).status, 202);
  await page.waitForFunction(() => {
    const s = JSON.parse(document.querySelector('#plot').dataset.series);
    return s['plot:a'] === 3 && s['plot:b'] === 5;
  }, null, { timeout: 2000 });
  const after = await plot();
  assert.ok(after.total >= before.total + 8, `total ${before.total} -> ${after.total}`);

  // The legend names both, busiest first, and the canvas is painted in their colours.
  const legend = await page.$$eval('#plot-legend [data-channel]', (items) => items.map((i) => ({
    channel: i.dataset.channel, count: Number(i.querySelector('b').textContent), colour: getComputedStyle(i.querySelector('i')).backgroundColor,
  })));
  const a = legend.find((l) => l.channel === 'plot:a');
  const b = legend.find((l) => l.channel === 'plot:b');
  assert.ok(a && b && a.count === 3 && b.count === 5, JSON.stringify(legend));
  assert.ok(legend.indexOf(b) < legend.indexOf(a), 'busiest first');
  const painted = await page.evaluate((colours) => {
    const c = document.querySelector('#plot-canvas');
    const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const want = colours.map((s) => s.match(/\d+/g).slice(0, 3).map(Number));
    const hits = want.map(() => 0);
    for (let i = 0; i < px.length; i += 4) {
      if (px[i + 3] < 200) continue; // the lines, drawn opaque
      want.forEach((w, k) => { if (Math.abs(px[i] - w[0]) + Math.abs(px[i + 1] - w[1]) + Math.abs(px[i + 2] - w[2]) < 30) hits[k]++; });
    }
    return hits;
  }, [a.colour, b.colour]);
  assert.equal(painted.length, 2);
  // non-empty: two series, just above
  assert.ok(painted.every((n) => n > 0), `line pixels per series: ${painted}`);
});

test('the publish box publishes; bad JSON and refused events send nothing', async () => {
  const logged = async () => (await rest('GET', '/api/events?channel=ui:publish')).body.events;
  await page.fill('#p-channel', 'ui:publish');
  await page.fill('#p-event', 'from.window');
  await page.fill('#p-data', '{"n": 1, "text": "hello"}');
  await page.click('#p-send');
  await page.waitForFunction(() => /^Published #\d+$/.test(document.querySelector('#p-status').textContent));
  const seq = Number((await page.textContent('#p-status')).match(/\d+/)[0]);
  await page.waitForSelector('#log .row:not([hidden]) >> text=from.window', { timeout: 1000 });
  assert.deepEqual((await logged()).map((e) => [e.seq, e.event, e.data, e.source]),
    [[seq, 'from.window', { n: 1, text: 'hello' }, 'rest']]);

  await page.fill('#p-data', '{"n": 2,');
  await page.click('#p-send');
  await page.waitForSelector('#p-status.error >> text=not valid JSON', { timeout: 1000 });
  assert.equal(await page.getAttribute('#p-data', 'aria-invalid'), 'true');

  await page.fill('#p-data', '{"n": 3}');
  await page.fill('#p-channel', 'not a channel');
  await page.click('#p-send');
  await page.waitForSelector('#p-status.error >> text=invalid_field', { timeout: 1000 });
  assert.match(await page.textContent('#p-status'), /^Refused: invalid_field: channel: /, "the hub's error, as it said it");

  await new Promise((r) => setTimeout(r, 200));
  assert.equal((await logged()).length, 1, 'nothing else was published');
  assert.equal((await rest('GET', '/api/events?channel=not*')).body.events.length, 0);
  await page.fill('#p-channel', 'test');
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

test("Replay in an event's detail publishes a copy marked replay_of", async () => {
  await setFilter('#f-event', 'build.started');
  await page.click('#log .row:not([hidden]) >> text=build.started');
  await page.waitForSelector('#detail:not([hidden])');
  const original = JSON.parse(await page.textContent('#detail-json'));
  await page.click('#detail-replay');
  const copy = await eventually(async () => (await rest('GET', '/api/events?channel=project:1')).body.events
    .find((e) => e.replay_of === original.seq), 'the replayed event');
  assert.ok(copy.seq > original.seq);
  assert.equal(copy.source, 'system');
  assert.deepEqual([copy.channel, copy.event, copy.data], [original.channel, original.event, original.data]);

  // The copy arrives in the log like any event, and its detail says what it replays.
  await page.click(`#log .row[data-seq="${copy.seq}"]`, { timeout: 2000 });
  await page.waitForFunction((s) => document.querySelector('#detail-title').textContent === `#${s.copy} build.started (replay of #${s.original})`,
    { copy: copy.seq, original: original.seq }, { timeout: 1000 });
  assert.equal(JSON.parse(await page.textContent('#detail-json')).replay_of, original.seq);
  await page.click('#detail-close');
  await setFilter('#f-event', '');
});

test('the Files panel lists, adds and removes watched folders', async () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'sb-ui-watch-')));
  const other = realpathSync(mkdtempSync(join(tmpdir(), 'sb-ui-watch-')));
  const roots = async () => {
    const r = await asOwner('GET', '/api/watches');
    assert.equal(r.status, 200, `GET /api/watches: ${JSON.stringify(r.body)}`);
    return r.body.watches.map((w) => w.root);
  };
  const item = (root) => `#watches li[data-root="${root}"]`;
  try {
    await page.click('[data-tab=files]');
    await page.fill('#w-path', dir);
    await page.click('#w-add');
    await page.waitForSelector(item(dir), { timeout: 3000 });
    assert.ok((await roots()).includes(dir));
    assert.equal(await page.isHidden('#watches-empty'), true);

    // Added by someone else: the `watch.added` event refreshes the list.
    const added = await asOwner('POST', '/api/watches', { path: other });
    assert.equal(added.status, 201);
    await page.waitForSelector(item(added.body.root), { timeout: 3000 });

    // Not a directory: the hub's 422 is shown, and nothing is added.
    const file = join(dir, 'not-a-dir.txt');
    writeFileSync(file, 'x');
    await page.fill('#w-path', file);
    await page.click('#w-add');
    await page.waitForSelector('#w-status.error', { timeout: 3000 });
    assert.match(await page.textContent('#w-status'), /^Not added: \w+: ./);
    assert.ok(!(await roots()).includes(file));

    await page.click(`${item(dir)} button`);
    await page.waitForSelector(item(dir), { state: 'detached', timeout: 3000 });
    assert.ok(!(await roots()).includes(dir));

    // Removed by someone else: `watch.removed` takes it off the list.
    assert.equal((await asOwner('DELETE', `/api/watches?path=${encodeURIComponent(added.body.root)}`)).status, 204);
    await page.waitForSelector(item(added.body.root), { state: 'detached', timeout: 3000 });
    await page.waitForSelector('#watches-empty:not([hidden])', { timeout: 1000 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(other, { recursive: true, force: true });
    await page.click('[data-tab=events]');
  }
});

test('pending ask_user questions are answered from the window: in words, and by a choice', async () => {
  await page.waitForSelector('#question-count:not([hidden])', { timeout: 10_000 });
  await page.click('[data-tab=questions]');
  const text = page.locator('.question').filter({ hasText: 'Which database?' });
  const choice = page.locator('.question').filter({ hasText: 'Which cache?' });
  await text.waitFor();
  await choice.waitFor();
  assert.equal(await page.textContent('#question-count'), '2');
  // The question with options shows them as buttons, and no text box.
  assert.deepEqual(await choice.locator('button.choice').allTextContents(), ['Redis', 'None']);
  assert.equal(await choice.locator('textarea').count(), 0);
  await text.locator('textarea').fill('Postgres, from the window');
  await text.locator('button').click();
  await text.waitFor({ state: 'detached', timeout: 5000 });
  await choice.getByRole('button', { name: 'Redis' }).click();
  // Answered (question.answered): the window clears it.
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
