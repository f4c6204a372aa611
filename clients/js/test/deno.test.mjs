// The client under Deno (the `deno` npm package's binary), with Deno's own WebSocket and fetch, against the real
// hub: connect, publish with an ack, the dev-webhook helpers (Deno has no EventSource: the fetch stream is read),
// and a SIGKILL restart across which the client resumes with no gap and no duplicate.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Hub, range, until } from '../test-support/hub.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));

test('under Deno: live, publish ack, dev-webhook helpers, and a resume across a SIGKILL restart', async (t) => {
  const hub = await new Hub().start();
  t.after(() => hub.stop());
  const deno = spawn(`${root}node_modules/.bin/deno`, ['run', '--quiet', '--no-config', '--allow-net', 'test/deno-smoke.ts', hub.url], {
    cwd: root,
    env: { ...process.env, DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  t.after(() => deno.kill('SIGKILL'));
  const out = [];
  createInterface({ input: deno.stdout }).on('line', (l) => out.push(JSON.parse(l)));
  const step = (name) => until(() => out.find((o) => o.step === name), 30_000, `Deno's "${name}"`);

  const live = await step('live');
  assert.deepEqual(live.webhook, { success: true, message: 'Webhook received: from.deno' });
  assert.equal(live.backend?.type, 'from.deno', 'subscribeToBackendEvents read the stream with fetch');
  assert.equal(live.lastSeq >= live.ack.seq, true);
  const first = live.ack.seq;

  await hub.kill();
  await hub.start();
  const away = [];
  for (let i = 0; i < 5; i++) away.push(await hub.publish('deno', 'while-away', { i }));
  const after = [];
  for (let i = 0; i < 5; i++) after.push(await hub.publish('deno', 'after', { i }));
  deno.stdin.write(`${after.at(-1)}\n`);
  const resumed = await step('resumed');
  assert.deepEqual(resumed.got, [first, ...range(away[0], after.at(-1))]);
  assert.equal(resumed.lastSeq, after.at(-1));
  assert.deepEqual(resumed.states.slice(0, 1), ['live']);
  assert.ok(resumed.states.includes('offline'));
});
