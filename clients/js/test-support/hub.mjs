// Test helpers for the client's tests: a real switchboard hub process (started, SIGKILLed and restarted on the same
// port, or on the same port with a new data dir), its REST API, the WebSocket constructor for this Node, and small
// waiting helpers. SWITCHBOARD_BIN names the binary (default: the debug build in ~/.cache/switchboard-target).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { storeArgs } from '../../../tests/js/store.mjs';

export const BIN = process.env.SWITCHBOARD_BIN || join(homedir(), '.cache/switchboard-target/debug/switchboard');

/** The global WebSocket (Node 22, Deno, browsers), else `ws` (Node 20). */
export const WebSocket = globalThis.WebSocket ?? (await import('ws')).default;

/** A free loopback port, so a restarted hub can come back on the same one. */
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

/** A hub on its own data dir. `kill()` is SIGKILL; `start()` again brings it back on the same port and dir;
 * `newDir()` points the next `start()` at a fresh data dir (a new log, so a new epoch). */
export class Hub {
  constructor(args = []) {
    this.args = args;
    this.dirs = [];
    this.newDir();
  }

  newDir() {
    this.dir = mkdtempSync(join(tmpdir(), 'switchboard-client-'));
    this.dirs.push(this.dir);
  }

  async start() {
    assert.ok(existsSync(BIN), `no switchboard binary at ${BIN}; build it or set SWITCHBOARD_BIN`);
    this.port ??= await freePort();
    this.proc = spawn(BIN, ['serve', '--port', String(this.port), '--data-dir', this.dir, ...storeArgs(this.dir), ...this.args], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
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
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = new Promise((resolve) => this.proc.once('exit', resolve));
    this.proc.kill('SIGKILL');
    await exited;
  }

  async stop() {
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) {
      const exited = new Promise((resolve) => this.proc.once('exit', resolve));
      this.proc.kill('SIGTERM');
      await exited;
    }
    for (const d of this.dirs) rmSync(d, { recursive: true, force: true });
  }

  /** A REST call with the hub token. */
  async api(method, path, body) {
    const res = await fetch(this.url + path, {
      method,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${this.token}` },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }

  /** `POST /api/events`; the seq. */
  async publish(channel, event, data = {}) {
    const r = await this.api('POST', '/api/events', { channel, event, data });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    return r.body.seq;
  }

  /** The seqs in the log on `channel` (a name or pattern) after `since`. */
  async logSeqs(channel, since = 0) {
    const r = await this.api('GET', `/api/events?channel=${encodeURIComponent(channel)}&since=${since}&limit=1000`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.events.map((e) => e.seq);
  }
}

/** Resolves when `pred()` holds, polling; fails after `ms`. */
export async function until(pred, ms = 5000, what = 'condition') {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** `from..to` inclusive. */
export const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
