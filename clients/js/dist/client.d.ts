/** What a UI shows: `connecting` (a socket is opening), `live` (the hub greeted it), `offline` (waiting to
 * retry), `closed` (after `.close()`; final). */
export type ConnectionState = 'connecting' | 'live' | 'offline' | 'closed';
/** An event as the hub logs and sends it (the envelope). */
export interface SwitchboardEvent<T = unknown> {
    /** Position in the hub's log: strictly increasing, never reused. */
    seq: number;
    id: string;
    channel: string;
    event: string;
    data: T;
    /** `rest`, `mcp`, `ws`, `socketio`, `pusher`, `webhook`, `watcher` or `system`. */
    source: string;
    /** RFC 3339 UTC. */
    ts: string;
    /** For an event re-published by `POST /api/events/{seq}/replay`: the seq it copies. */
    replay_of?: number;
}
/** Why the client could not resume, and where it goes on from. The app should refetch its state over HTTP. */
export interface ResyncInfo {
    /** `epoch`: the hub's log is another one (a new data dir, or a log behind `since`); `pruned`: events after
     * `since` are no longer kept (retention). */
    reason: 'epoch' | 'pruned';
    epoch: string;
    previousEpoch: string | null;
    /** The new `lastSeq`: live events from here on. */
    lastSeq: number;
    previousLastSeq: number | null;
}
/** A scheduled reconnect: `attempt` counts from 0 since the last successful connection; `delay` is in ms. */
export interface ReconnectInfo {
    attempt: number;
    delay: number;
    /** The close code of the socket that went away (1006 when it just died, 1001 hub shutdown, 4008 slow consumer). */
    code?: number;
}
/** The ack of a publish: the event's seq once it is committed. */
export interface PublishAck {
    seq: number;
}
/** The least a WebSocket implementation must offer: the browser's, Node 22's and Deno's globals, or `ws`. */
export interface WebSocketLike {
    onopen: ((ev: any) => any) | null;
    onmessage: ((ev: any) => any) | null;
    onclose: ((ev: any) => any) | null;
    onerror: ((ev: any) => any) | null;
    send(data: string): void;
    close(code?: number, reason?: string): void;
}
/** A WebSocket constructor, e.g. `import WebSocket from 'ws'` on Node 20. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;
/** The least an EventSource implementation must offer (only `subscribeToBackendEvents` uses one). */
export interface EventSourceLike {
    onmessage: ((ev: any) => any) | null;
    close(): void;
}
/** An EventSource constructor. */
export type EventSourceConstructor = new (url: string) => EventSourceLike;
export interface ConnectOptions {
    /** The hub: `http(s)://host:port` or `ws(s)://host:port[/ws]`. Default: `configure()`'s, else http://127.0.0.1:4747. */
    url?: string;
    /** The hub token or a JWT signed with it (sent as `?token=`). Default: `configure()`'s. */
    token?: string;
    /** Channel names or prefix patterns ending in `*` (`agent:*`). Every connection is also in `global`. */
    channels?: string[];
    /** Resume after this seq (e.g. one the app stored); without it the client starts live. */
    since?: number;
    /** The epoch `since` belongs to; a different one on the hub means the log was reset (resync). */
    epoch?: string;
    /** The WebSocket constructor. Default: `configure()`'s, else the global one (none on Node 20: use `ws`). */
    WebSocket?: WebSocketConstructor;
    /** Called when the hub cannot resume (`recovered: false`): refetch over HTTP. Same as `.on('resync', fn)`. */
    onResync?: (info: ResyncInfo) => void;
    /** Reconnect delay: random(0, min(cap, base·2^attempt)) ms. Defaults: base 500, cap 30 000. */
    backoff?: {
        base?: number;
        cap?: number;
    };
    /** The random source of the jitter, in [0, 1). Default `Math.random`. */
    random?: () => number;
}
/** The names `.on()` keeps for the client's own events. */
export type LifecycleName = 'state' | 'resync' | 'reconnect' | 'error';
/** A connection to the hub that survives hub restarts, network loss and slow-consumer cut-offs until `.close()`. */
export interface Connection {
    /** Connection state changes. Returns an unsubscribe function (as every `.on` does). */
    on(name: 'state', fn: (state: ConnectionState) => void): () => void;
    /** The hub could not resume; refetch. */
    on(name: 'resync', fn: (info: ResyncInfo) => void): () => void;
    /** A reconnect was scheduled. */
    on(name: 'reconnect', fn: (info: ReconnectInfo) => void): () => void;
    /** A socket error, or an error frame that answers no request of this client. */
    on(name: 'error', fn: (error: unknown) => void): () => void;
    /** Every hub event (`'*'`), or the events with this name. Hub events named `state`, `resync`, `reconnect` or
     * `error` reach only `'*'`. */
    on<T = unknown, N extends string = string>(name: N & (N extends LifecycleName ? never : unknown), fn: (event: SwitchboardEvent<T>) => void): () => void;
    /** Follows a channel or pattern, now and on every reconnect; resolves when the hub acknowledges it. */
    subscribe(pattern: string): Promise<void>;
    /** Stops following it. */
    unsubscribe(pattern: string): Promise<void>;
    /** Publishes; resolves with the seq once committed, rejects with the hub's error (`SwitchboardError`). Made
     * while not live, it waits for the next connection; in flight when the socket drops, it is sent again on the
     * next one with the same idempotency key, so the hub commits it once and answers with that seq. */
    publish<T = unknown>(channel: string, event: string, data?: T): Promise<PublishAck>;
    /** Closes for good: no more reconnects; what waits is rejected with `closed`. */
    close(): void;
    /** The log position this client is caught up to (`since` on the next reconnect); null until known. */
    readonly lastSeq: number | null;
    /** The hub log's epoch; null until the first connection, unless given. */
    readonly epoch: string | null;
    readonly state: ConnectionState;
    /** The channels and patterns followed. */
    readonly channels: string[];
}
/** Settings shared by `connect()` and the dev-webhook helpers. */
export interface ConfigureOptions {
    /** The hub's URL. Default http://127.0.0.1:4747. */
    url?: string;
    /** The hub token (or a JWT), sent as `Authorization: Bearer` or `?token=`. */
    token?: string;
    WebSocket?: WebSocketConstructor;
    /** Used by `subscribeToBackendEvents` when given or global; else it reads the stream with `fetch`. */
    EventSource?: EventSourceConstructor;
}
/** What `POST /api/dev/webhook` answers. */
export interface DevWebhookResult {
    success: boolean;
    message: string;
}
/** One message of `GET /api/dev/events`. */
export interface BackendEvent<T = unknown> {
    type: string;
    data: T;
    timestamp: string;
}
/** An error from the hub (`code` as in docs/protocol.md) or from this client: `disconnected`, `closed`,
 * `invalid_field` (a bad pattern), `payload_too_large`, `no_websocket`. */
export declare class SwitchboardError extends Error {
    code: string;
    constructor(code: string, message: string);
}
/** Sets the hub URL, token and implementations for everything in this module. */
export declare function configure(options: ConfigureOptions): void;
/** Connects to the hub's WebSocket `/ws` and keeps it connected until `.close()`. */
export declare function connect(options?: ConnectOptions): Connection;
/** The old helper: publishes `eventType` with `data` on the `dev` channel (`POST /api/dev/webhook`). A refusal
 * comes back as `{success: false, message}`; a hub that cannot be reached rejects. */
export declare function sendDevWebhook(eventType: string, data?: unknown): Promise<DevWebhookResult>;
/** The old helper: calls `callback` with `{type, data, timestamp}` for every event the hub sends on
 * `GET /api/dev/events` (every channel), reconnecting by itself. Returns the function that stops it. */
export declare function subscribeToBackendEvents<T = unknown>(callback: (event: BackendEvent<T>) => void): () => void;
