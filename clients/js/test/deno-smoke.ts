// Run by test/deno.test.mjs under Deno (`deno run --allow-net`), with Deno's own WebSocket and fetch: imports the
// build, connects to the hub given as the first argument, and prints one JSON line per step on stdout; the Node
// side drives the hub (publishes, SIGKILL, restart) from what it reads, and sends the seq to reach on stdin.
import { configure, connect, sendDevWebhook, subscribeToBackendEvents } from '../dist/client.js';

const say = (o: unknown) => console.log(JSON.stringify(o));
const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).getReader();
const next = async () => (await lines.read()).value;

configure({ url: Deno.args[0] });
// Retries wait exactly 700 ms, so what the Node side publishes right after the restart reaches this client by resume.
const conn = connect({ channels: ['deno'], backoff: { base: 700, cap: 700 }, random: () => 1 });
const got: number[] = [];
conn.on('*', (e) => got.push(e.seq));
const states: string[] = [];
conn.on('state', (s) => states.push(s));
await new Promise<void>((ok) => conn.on('state', (s) => s === 'live' && ok()));
const ack = await conn.publish('deno', 'hello', { from: 'deno' });
const backend: unknown[] = [];
const stop = subscribeToBackendEvents((e) => backend.push(e));
let webhook;
for (let i = 0; i < 20 && backend.length === 0; i++) {
  webhook = await sendDevWebhook('from.deno', { i });
  await new Promise((r) => setTimeout(r, 150));
}
stop();
say({ step: 'live', ack, webhook, backend: backend[0] ?? null, lastSeq: conn.lastSeq });
// The hub was killed, restarted and published while this client was away, then published more: the Node side
// sends the last seq, and this client must get there.
const target = Number(await next());
while ((conn.lastSeq ?? 0) < target) await new Promise((r) => setTimeout(r, 10));
say({ step: 'resumed', got, lastSeq: conn.lastSeq, states });
conn.close();
Deno.exit(0);
