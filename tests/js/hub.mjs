// Shared by the protocol tests: a real hub process (started, SIGKILLed, restarted on the same port and data dir),
// its REST API, the official MCP TypeScript client, and small waiting helpers. SWITCHBOARD_BIN names the binary.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { storeArgs } from './store.mjs';

export const PUSHER = { appId: '4242', key: 'test-key', secret: 'test-secret' };

/** A free loopback port (so a restarted hub can come back on the same one). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** A hub on its own data dir and port, with known Pusher credentials. `kill()` is SIGKILL; `start()` again
 * brings it back on the same port and data dir. */
export class Hub {
  constructor(extraArgs = []) {
    this.dir = mkdtempSync(join(tmpdir(), 'switchboard-proto-'));
    this.extraArgs = extraArgs;
  }

  async start() {
    const bin = process.env.SWITCHBOARD_BIN;
    assert.ok(bin, 'SWITCHBOARD_BIN must name the switchboard binary');
    this.port ??= await freePort();
    const args = ['serve', '--port', String(this.port), '--data-dir', this.dir,
      '--pusher-app-id', PUSHER.appId, '--pusher-key', PUSHER.key, '--pusher-secret', PUSHER.secret,
      ...storeArgs(this.dir), ...this.extraArgs];
    this.proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    const line = await new Promise((resolve, reject) => {
      createInterface({ input: this.proc.stdout }).once('line', resolve);
      this.proc.once('exit', (code) => reject(new Error(`hub exited with ${code}`)));
    });
    this.url = line.match(/^switchboard listening on (http:\/\/\S+)$/)[1];
    this.token = readFileSync(join(this.dir, 'token'), 'utf8').trim();
    return this;
  }

  /** SIGKILL: no close frames, no goodbye. */
  async kill() {
    const exited = new Promise((resolve) => this.proc.once('exit', resolve));
    this.proc.kill('SIGKILL');
    await exited;
  }

  async stop() {
    if (this.proc && this.proc.exitCode === null) {
      const exited = new Promise((resolve) => this.proc.once('exit', resolve));
      this.proc.kill('SIGTERM');
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** A REST call; `token: true` sends the hub token. */
  async api(method, path, body, { token = false, headers = {} } = {}) {
    const res = await fetch(this.url + path, {
      method,
      headers: {
        'content-type': 'application/json',
        ...(token ? { authorization: `Bearer ${this.token}` } : {}),
        ...headers,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }

  /** The official MCP client over Streamable HTTP, as the hub's owner. */
  async mcp() {
    const client = new Client({ name: 'switchboard-node-tests', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(new URL(`${this.url}/mcp`), {
      requestInit: { headers: { authorization: `Bearer ${this.token}` } },
    });
    await client.connect(transport);
    return client;
  }

  pusherOptions(extra = {}) {
    return {
      wsHost: '127.0.0.1', wsPort: this.port, forceTLS: false, enabledTransports: ['ws'], cluster: 'local',
      channelAuthorization: {
        endpoint: `${this.url}/pusher/auth`, transport: 'ajax',
        headers: { authorization: `Bearer ${this.token}` },
      },
      userAuthentication: {
        endpoint: `${this.url}/pusher/user-auth`, transport: 'ajax',
        headers: { authorization: `Bearer ${this.token}` },
      },
      ...extra,
    };
  }
}

/** Resolves when `pred()` holds, polling; fails after `ms`. */
export async function until(pred, ms = 5000, what = 'condition') {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The seq of each event, asserting they are strictly increasing with no gap from `from` to `to`. */
export function assertContinuous(seqs, from, to) {
  const want = [];
  for (let s = from; s <= to; s++) want.push(s);
  assert.deepEqual(seqs, want, 'every seq exactly once, in order');
}

/** An HS256 JWT with `claims`, signed with `secret` (the hub token). */
export function jwt(secret, claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`;
}
