// The built app (dist/, made by `npm test`'s build step) in headless Chromium (playwright-core with Debian's
// /usr/bin/chromium; CHROMIUM names another) against the real hub binary: an agent created through MCP by the
// Python SDK appears without a reload within 1 s, an edit in one tab appears in another, and after the hub goes
// away and comes back the page recovers by itself and shows what changed while it was gone.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';
import { Hub, freePort } from '../../../clients/js/test-support/hub.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const python = join(root, '../../tests/py/.venv/bin/python');
const executablePath = [process.env.CHROMIUM, '/usr/bin/chromium'].find((p) => p && existsSync(p));

let hub;
let app;
let browser;
let appUrl;

/** dist/ over HTTP on another loopback port (a different origin than the hub's, as with `vite dev`). */
function serveDist() {
  const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml' };
  const server = createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    const file = join(root, 'dist', path === '/' ? 'index.html' : path);
    if (!file.startsWith(join(root, 'dist')) || !existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' }).end(readFileSync(file));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

before(async () => {
  assert.ok(existsSync(join(root, 'dist/index.html')), 'no dist/: run `npm test` (it builds first) or `npm run build`');
  assert.ok(existsSync(python), 'no tests/py/.venv: run the test command (scripts/test.sh)');
  assert.ok(executablePath, 'no Chromium at /usr/bin/chromium (scripts/test.sh installs it); CHROMIUM names another');
  hub = await new Hub().start();
  app = await serveDist();
  appUrl = `http://127.0.0.1:${app.address().port}/?hub=${encodeURIComponent(hub.url)}`;
  browser = await chromium.launch({
    executablePath,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
});

after(async () => {
  await browser?.close();
  app?.close();
  await hub?.stop();
});

/** A new tab on the app, live, with its page errors collected (a test fails on any). */
async function openTab(t) {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  t.after(async () => {
    await page.close();
    assert.deepEqual(errors, [], 'no errors in the page');
  });
  await page.goto(appUrl);
  await page.getByTestId('state').filter({ hasText: 'live' }).waitFor({ timeout: 10_000 });
  // Set once per load: a reload would lose it.
  await page.evaluate(() => (window.__loadedOnce = true));
  return page;
}

const row = (page, name) => page.locator('li[data-agent-id]').filter({ has: page.locator('.name', { hasText: new RegExp(`^${name}$`) }) });

test('an agent created through MCP (Python SDK) shows up within 1 s, with no reload', async (t) => {
  const page = await openTab(t);
  const { stdout } = await promisify(execFile)(python, [join(root, 'test/mcp_create.py'), hub.url, 'from-the-ide'], { timeout: 60_000 });
  const created = Date.now();
  const agent = JSON.parse(stdout);
  await page.locator(`li[data-agent-id="${agent.id}"] .name`).filter({ hasText: 'from-the-ide' }).waitFor({ timeout: 1000 });
  const shownAfter = Date.now() - created;
  assert.ok(shownAfter <= 1000, `shown ${shownAfter} ms after the MCP call returned`);
  assert.equal(await page.evaluate(() => window.__loadedOnce), true, 'the page was not reloaded');
  await page.getByTestId('last-event').filter({ hasText: 'agent.created from-the-ide (mcp)' }).waitFor();
});

test('an edit in one tab shows up in a second tab', async (t) => {
  const a = await openTab(t);
  const b = await openTab(t);
  await a.getByLabel("New agent's name").fill('shared');
  await a.getByRole('button', { name: 'Add' }).click();
  await row(b, 'shared').waitFor({ timeout: 5000 });

  // Tab A edits it in its editor (it selected the agent it made); tab B only lists it.
  await a.getByLabel('Name', { exact: true }).fill('renamed-in-a');
  await a.getByLabel('Status').selectOption('busy');
  await a.getByRole('button', { name: 'Save' }).click();
  await row(b, 'renamed-in-a').locator('.status', { hasText: 'busy' }).waitFor({ timeout: 5000 });
  assert.equal(await row(b, 'renamed-in-a').locator('.version').textContent(), 'v2');

  // And back: tab B opens the editor, renames it (only the name: the event carries it, so tab A updates in place).
  await row(b, 'renamed-in-a').click();
  await b.getByLabel('Name', { exact: true }).fill('renamed-in-b');
  await b.getByRole('button', { name: 'Save' }).click();
  await row(a, 'renamed-in-b').waitFor({ timeout: 5000 });
  await a.getByTestId('editor').getByRole('heading', { name: 'renamed-in-b v3' }).waitFor({ timeout: 5000 });
  assert.equal(await a.evaluate(() => window.__loadedOnce), true);
  assert.equal(await b.evaluate(() => window.__loadedOnce), true);
});

test('after the hub restarts, the page recovers by itself and shows what changed while it was down', async (t) => {
  const page = await openTab(t);
  const made = await hub.api('POST', '/api/agents', { name: 'before-restart' });
  assert.equal(made.status, 201);
  await row(page, 'before-restart').waitFor({ timeout: 5000 });

  await hub.kill();
  await page.getByTestId('state').filter({ hasText: /offline|connecting/ }).waitFor({ timeout: 10_000 });
  // While the page cannot reach it, the hub comes back on another port (same data dir) and things change there.
  const port = hub.port;
  hub.port = await freePort();
  await hub.start();
  assert.equal((await hub.api('POST', '/api/agents', { name: 'while-you-were-away' })).status, 201);
  assert.equal((await hub.api('PATCH', `/api/agents/${made.body.id}`, { name: 'renamed-while-away', status: 'sleeping' })).status, 200);
  await hub.kill();
  // Then it is back where the page looks for it.
  hub.port = port;
  await hub.start();

  await page.getByTestId('state').filter({ hasText: 'live' }).waitFor({ timeout: 40_000 });
  // Resumed, not refetched: the events it missed were replayed to it.
  await page.getByTestId('last-event').filter({ hasText: 'agent.updated renamed-while-away (rest)' }).waitFor({ timeout: 5000 });
  await row(page, 'while-you-were-away').waitFor({ timeout: 5000 });
  await row(page, 'renamed-while-away').locator('.status', { hasText: 'sleeping' }).waitFor({ timeout: 5000 });
  assert.equal(await row(page, 'before-restart').count(), 0);
  assert.equal(await page.evaluate(() => window.__loadedOnce), true, 'recovered without a reload');
});
