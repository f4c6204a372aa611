// The MCP Inspector's CLI (@modelcontextprotocol/inspector) against the real hub, the way a user would point it at
// Switchboard: over stdio (`switchboard --data-dir D mcp --hub URL`) and over Streamable HTTP (`URL/mcp`). The
// Inspector needs Node 22, so it runs under the Node of the `node` package installed here, whatever Node runs
// this file. SWITCHBOARD_BIN names the binary.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { storeArgs } from '../js/store.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const NODE22 = join(here, 'node_modules/node/bin/node');
const PACKAGE = join(here, 'node_modules/@modelcontextprotocol/inspector');
const INSPECTOR = join(PACKAGE, JSON.parse(readFileSync(join(PACKAGE, 'package.json'), 'utf8')).bin['mcp-inspector']);

const TOOLS = ['ask_user', 'create_agent', 'delete_agent', 'get_agent', 'hub_status', 'list_agents',
  'publish_event', 'recent_events', 'update_agent', 'wait_for_event'];
const PROMPTS = ['inspect_agent', 'summarize_events'];

/** A hub on port 0 with its own data dir; `url` once it listens. */
class Hub {
  async start() {
    const bin = process.env.SWITCHBOARD_BIN;
    assert.ok(bin, 'SWITCHBOARD_BIN must name the switchboard binary');
    this.bin = bin;
    this.dir = mkdtempSync(join(tmpdir(), 'switchboard-inspector-'));
    this.proc = spawn(bin, ['serve', '--port', '0', '--data-dir', this.dir, ...storeArgs(this.dir)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const line = await new Promise((resolve, reject) => {
      createInterface({ input: this.proc.stdout }).once('line', resolve);
      this.proc.once('exit', (code) => reject(new Error(`hub exited with ${code}`)));
    });
    this.url = line.match(/^switchboard listening on (http:\/\/\S+)$/)[1];
    this.token = readFileSync(join(this.dir, 'token'), 'utf8').trim();
  }

  async stop() {
    if (this.proc && this.proc.exitCode === null) {
      const exited = new Promise((resolve) => this.proc.once('exit', resolve));
      this.proc.kill('SIGTERM');
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  async agents() {
    const res = await fetch(`${this.url}/api/agents`, { headers: { authorization: `Bearer ${this.token}` } });
    assert.equal(res.status, 200);
    return (await res.json()).agents;
  }
}

const hub = new Hub();
before(() => hub.start());
after(() => hub.stop());

/** Runs the Inspector CLI under Node 22 with `args` and returns its JSON result; fails with its output if it
 * exits non-zero. HOME is a scratch dir, so nothing it keeps (catalog, secrets) lands in the user's. */
function inspector(args) {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, HOME: join(hub.dir, 'inspector-home') };
    execFile(NODE22, [INSPECTOR, '--cli', '--format', 'json', ...args], { env, timeout: 60_000 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`inspector ${args.join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`));
        else resolve(JSON.parse(stdout).result);
      });
  });
}

/** The ways in: each turns Inspector options into a full command line. */
const TRANSPORTS = {
  stdio: (opts) => [...opts, '--', hub.bin, '--data-dir', hub.dir, 'mcp', '--hub', hub.url],
  http: (opts) => [`${hub.url}/mcp`, '--transport', 'http', '--header', `Authorization: Bearer ${hub.token}`, ...opts],
};

test('the Inspector runs under Node 22', async () => {
  const version = await new Promise((resolve, reject) => {
    execFile(NODE22, ['--version'], (err, out) => (err ? reject(err) : resolve(out.trim())));
  });
  assert.match(version, /^v22\./);
});

for (const [transport, line] of Object.entries(TRANSPORTS)) {
  test(`the Inspector CLI over ${transport}`, async (t) => {
    const run = (...opts) => inspector(line(opts));

    await t.test('tools/list has every hub tool, each with an object input schema', async () => {
      const { tools } = await run('--method', 'tools/list');
      assert.deepEqual(tools.map((x) => x.name).sort(), TOOLS);
      for (const tool of tools) assert.equal(tool.inputSchema.type, 'object', tool.name);
    });

    await t.test('resources/list and resources/templates/list', async () => {
      const { resources } = await run('--method', 'resources/list');
      const uris = resources.map((r) => r.uri);
      assert.ok(uris.includes('switchboard://agents') && uris.includes('switchboard://events'), uris.join(' '));
      const { resourceTemplates } = await run('--method', 'resources/templates/list');
      assert.deepEqual(resourceTemplates.map((r) => r.uriTemplate), ['switchboard://agents/{id}']);
    });

    await t.test('prompts/list, and prompts/get with an argument', async () => {
      const { prompts } = await run('--method', 'prompts/list');
      assert.deepEqual(prompts.map((p) => p.name), PROMPTS);
      const got = await run('--method', 'prompts/get', '--prompt-name', 'summarize_events',
        '--prompt-args', `channel=from-${transport}`);
      assert.equal(got.messages.length, 2);
      assert.match(got.messages[1].content.text, new RegExp(`no events on from-${transport}`));
    });

    await t.test('tools/call hub_status', async () => {
      const r = await run('--method', 'tools/call', '--tool-name', 'hub_status');
      assert.equal(r.isError, false);
      assert.equal(r.structuredContent.url, hub.url);
      assert.equal(typeof r.structuredContent.last_seq, 'number');
    });

    await t.test('tools/call create_agent makes an agent the REST API shows', async () => {
      const name = `inspected-over-${transport}`;
      const r = await run('--method', 'tools/call', '--tool-name', 'create_agent', '--tool-arg', `name=${name}`);
      assert.equal(r.isError, false);
      assert.equal(r.structuredContent.name, name);
      const listed = (await hub.agents()).filter((a) => a.name === name);
      assert.deepEqual(listed.map((a) => a.id), [r.structuredContent.id]);
    });
  });
}

test('the Inspector CLI on the 2026-07-28 protocol era over HTTP', async () => {
  const r = await inspector([`${hub.url}/mcp`, '--transport', 'http', '--protocol-era', 'modern',
    '--header', `Authorization: Bearer ${hub.token}`, '--method', 'tools/call', '--tool-name', 'hub_status']);
  assert.equal(r.structuredContent.url, hub.url);
});
