// Compile-only check of dist/client.d.ts (`npm run typecheck`, and test/types.test.mjs): uses every export the way
// an app would, with `ws` (Node 20) and the DOM's WebSocket and EventSource, and marks misuse that must not compile.
import WS from 'ws';
import {
  configure,
  connect,
  sendDevWebhook,
  subscribeToBackendEvents,
  SwitchboardError,
  type BackendEvent,
  type ConfigureOptions,
  type Connection,
  type ConnectionState,
  type ConnectOptions,
  type DevWebhookResult,
  type EventSourceConstructor,
  type EventSourceLike,
  type LifecycleName,
  type PublishAck,
  type ReconnectInfo,
  type ResyncInfo,
  type SwitchboardEvent,
  type WebSocketConstructor,
  type WebSocketLike,
} from '../dist/client.js';

interface AgentUpdated {
  id: string;
  version: number;
  changed: string[];
}

const settings: ConfigureOptions = { url: 'http://127.0.0.1:4747', token: 'token', WebSocket: WS };
configure(settings);
configure({ EventSource: globalThis.EventSource });

const wsCtor: WebSocketConstructor = WS; // `import WebSocket from 'ws'` fits
const domCtor: WebSocketConstructor = globalThis.WebSocket; // so does the browser's, Node 22's and Deno's
const esCtor: EventSourceConstructor = globalThis.EventSource;
const socket: WebSocketLike = new wsCtor('ws://127.0.0.1:4747/ws');
const source: EventSourceLike = new esCtor('http://127.0.0.1:4747/api/dev/events');
socket.close();
source.close();
void domCtor;

const options: ConnectOptions = {
  url: 'http://127.0.0.1:4747',
  token: 'token',
  channels: ['agent:*', 'global'],
  since: 1041,
  epoch: 'e9a1',
  WebSocket: WS,
  onResync: (info: ResyncInfo) => {
    const reason: 'epoch' | 'pruned' = info.reason;
    const next: number = info.lastSeq;
    const before: string | null = info.previousEpoch;
    void [reason, next, before, info.epoch, info.previousLastSeq];
  },
  backoff: { base: 250, cap: 10_000 },
  random: Math.random,
};
const conn: Connection = connect(options);
connect();

const offState: () => void = conn.on('state', (s: ConnectionState) => {
  if (s === 'live' || s === 'connecting' || s === 'offline' || s === 'closed') return;
});
conn.on('resync', (info) => info.lastSeq.toFixed());
conn.on('reconnect', (r: ReconnectInfo) => r.delay + r.attempt + (r.code ?? 0));
conn.on('error', (e: unknown) => e instanceof SwitchboardError && e.code.length);
conn.on<AgentUpdated>('agent.updated', (e: SwitchboardEvent<AgentUpdated>) => {
  const v: number = e.data.version;
  const fields: string[] = e.data.changed;
  const where: string = e.channel;
  void [v, fields, where, e.seq, e.id, e.event, e.source, e.ts, e.replay_of];
});
const offAll = conn.on('*', (e) => e.seq);
const reserved: LifecycleName[] = ['state', 'resync', 'reconnect', 'error'];
void reserved;
offState();
offAll();

async function app(): Promise<void> {
  await conn.subscribe('project:42');
  await conn.unsubscribe('project:42');
  const ack: PublishAck = await conn.publish('project:42', 'note', { text: 'hi' });
  const seq: number = ack.seq;
  await conn.publish('project:42', 'ping');
  try {
    await conn.publish('private-x', 'note', {});
  } catch (e) {
    if (e instanceof SwitchboardError) {
      const code: string = e.code;
      const message: string = e.message;
      const asError: Error = e;
      void [code, message, asError];
    }
  }
  const last: number | null = conn.lastSeq;
  const epoch: string | null = conn.epoch;
  const state: ConnectionState = conn.state;
  const channels: string[] = conn.channels;
  void [seq, last, epoch, state, channels];
  conn.close();

  const res: DevWebhookResult = await sendDevWebhook('build.done', { ok: true });
  const ok: boolean = res.success;
  const msg: string = res.message;
  await sendDevWebhook('no.data');
  void [ok, msg];
  const stop: () => void = subscribeToBackendEvents((e: BackendEvent) => {
    const type: string = e.type;
    const at: string = e.timestamp;
    void [type, at, e.data];
  });
  subscribeToBackendEvents<{ n: number }>((e) => e.data.n.toFixed());
  stop();
  const err = new SwitchboardError('closed', 'gone');
  void err;
}
void app;

// Misuse that must not compile.
// @ts-expect-error lastSeq is read-only
conn.lastSeq = 3;
// @ts-expect-error state is read-only
conn.state = 'live';
// @ts-expect-error the state handler gets a state, not an event
conn.on('state', (s: SwitchboardEvent) => s);
// @ts-expect-error channels are strings
connect({ channels: [1] });
// @ts-expect-error publish needs an event name
conn.publish('project:1');
// @ts-expect-error a publish ack has a number seq
const wrong: { seq: string } = await conn.publish('a', 'b');
// @ts-expect-error sendDevWebhook takes the event type first
sendDevWebhook({ event_type: 'x' });
// @ts-expect-error not a WebSocket constructor
connect({ WebSocket: class {} });
void wrong;
