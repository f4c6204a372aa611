// switchboard-client: the webapp client for a Switchboard hub (SPEC §12; the wire is docs/protocol.md).
// connect() follows channels over WebSocket /ws: it reconnects with exponential back-off and full jitter, resumes
// from the last seq and epoch without gap or duplicate (the hub replays every followed channel at once, in seq
// order, so the highest seq seen is where to resume), and says when it cannot (resync). A publish carries an
// idempotency key and is sent again after a reconnect, so it is committed once however the socket drops. sendDevWebhook() and
// subscribeToBackendEvents() keep the old dev-webhook helpers' names and signatures. No imports and no runtime
// dependencies: `tsc` compiles this one file to dist/client.js (served by the hub at /client.js) and dist/client.d.ts.
/** An error from the hub (`code` as in docs/protocol.md) or from this client: `disconnected`, `closed`,
 * `invalid_field` (a bad pattern), `payload_too_large`, `no_websocket`. */
export class SwitchboardError extends Error {
    constructor(code, message) {
        super(message);
        this.name = 'SwitchboardError';
        this.code = code;
    }
}
const DEFAULT_URL = 'http://127.0.0.1:4747';
const RESERVED = ['state', 'resync', 'reconnect', 'error'];
const PATTERN = /^[\w\-=@,.;:]{1,164}$|^[\w\-=@,.;:]{0,163}\*$/;
const g = globalThis;
const noop = () => { };
let settings = {};
/** Sets the hub URL, token and implementations for everything in this module. */
export function configure(options) {
    settings = { ...settings, ...options };
}
/** `url` as the WebSocket endpoint, or with `/ws…` taken off and `path` put on for HTTP. */
function endpoint(url, path) {
    const u = new URL(url);
    const ws = path == null;
    u.protocol = u.protocol.replace(ws ? /^http/ : /^ws/, ws ? 'ws' : 'http');
    const p = u.pathname.replace(/\/$/, '');
    u.pathname = ws ? (/\/ws(\/[^/]+)?$/.test(p) ? p : p + '/ws') : p.replace(/\/ws(\/[^/]+)?$/, '') + path;
    return u;
}
const fail = (code, message) => new SwitchboardError(code, message);
/** A fresh idempotency key: random, from the platform's UUIDs where it has them (not in insecure contexts). */
function newKey() {
    if (typeof g.crypto?.randomUUID === 'function')
        return g.crypto.randomUUID();
    return Array.from({ length: 4 }, () => Math.random().toString(36).slice(2, 10)).join('-');
}
/** Connects to the hub's WebSocket `/ws` and keeps it connected until `.close()`. */
export function connect(options = {}) {
    const o = options;
    const WS = o.WebSocket || settings.WebSocket || g.WebSocket;
    if (!WS)
        throw fail('no_websocket', 'no global WebSocket: pass connect({WebSocket}) (Node 20: `import WebSocket from "ws"`)');
    const base = endpoint(o.url || settings.url || DEFAULT_URL);
    const token = o.token ?? settings.token;
    const random = o.random || Math.random;
    const b = o.backoff || {};
    const delayBase = b.base ?? 500;
    const cap = b.cap ?? 30000;
    const handlers = new Map();
    /** Patterns wanted, in order. */
    const subs = new Set();
    /** Patterns the current socket holds or has asked for. */
    let held = new Set();
    /** Requests awaiting the hub's answer, by frame id. `sub` ones outlive a dropped socket; a publish (`text`) is
     * sent again. */
    const pending = new Map();
    /** Publishes to send once live: made while not live, or in flight when the socket dropped. */
    let outbox = [];
    /** `subscribe()` promises by pattern. */
    const waiters = new Map();
    let state = 'connecting';
    let epoch = o.epoch ?? null;
    let lastSeq = o.since ?? null;
    /** Every event up to `safe` has been delivered: the `since` of the next connection. */
    let safe = lastSeq;
    /** Seqs above `safe` delivered while a channel resumed on its own (a name with a comma, subscribed by frame)
     * replays beside the connection's own replay: then events may come out of seq order until the barrier. */
    const seen = new Set();
    /** This connection resumed a channel by frame, apart from the connect-time replay. */
    let apart = false;
    let socket = null;
    let ready = false;
    let closed = false;
    let attempt = 0;
    let timer;
    let watchdog;
    let heard = false;
    let misses = 0;
    let id = 0;
    /** The id of the ping that marks the end of this connection's replays, while they run. */
    let barrier = null;
    let sentSince = null;
    let greetedSeq = 0;
    let resynced = false;
    for (const p of o.channels || [])
        subs.add(check(p));
    if (o.onResync)
        on('resync', o.onResync);
    function check(p) {
        if (!PATTERN.test(p))
            throw fail('invalid_field', `channel: not a channel name or pattern: ${JSON.stringify(p)}`);
        return p;
    }
    function on(name, fn) {
        const set = handlers.get(name) || new Set();
        handlers.set(name, set);
        set.add(fn);
        return () => void set.delete(fn);
    }
    function emit(name, arg) {
        for (const fn of handlers.get(name) || []) {
            try {
                fn(arg);
            }
            catch (e) {
                // A handler's fault is the app's: report it as uncaught, but keep delivering.
                queueMicrotask(() => {
                    throw e;
                });
            }
        }
    }
    function setState(s) {
        if (s !== state) {
            state = s;
            emit('state', s);
        }
    }
    function send(frame) {
        socket?.send(JSON.stringify(frame));
    }
    function settle(p, e) {
        for (const [ok, no] of waiters.get(p) || [])
            e ? no(e) : ok();
        waiters.delete(p);
    }
    function request(frame, entry) {
        frame.id = ++id;
        pending.set(id, entry);
        send(frame);
    }
    function subscribeFrame(p, resume) {
        held.add(p);
        const f = { type: 'subscribe', channel: p };
        if (resume) {
            f.since = sentSince;
            f.epoch = epoch;
        }
        request(f, {
            ok: () => settle(p),
            no: (e) => {
                subs.delete(p);
                held.delete(p);
                settle(p, e);
            },
            sub: 1,
        });
    }
    function open() {
        timer = undefined;
        setState('connecting');
        const u = new URL(base.href);
        const plain = [...subs].filter((p) => !p.includes(','));
        const q = u.searchParams;
        if (plain.length)
            q.set('channels', plain.join(','));
        sentSince = safe;
        if (safe != null)
            q.set('since', String(safe));
        if (epoch)
            q.set('epoch', epoch);
        if (token)
            q.set('token', token);
        held = new Set(plain);
        ready = resynced = apart = false;
        barrier = null;
        let ws;
        try {
            ws = new WS(u.href);
        }
        catch (e) {
            emit('error', e);
            return retry();
        }
        socket = ws;
        ws.onmessage = (m) => {
            heard = true;
            receive(m.data);
        };
        ws.onclose = (c) => socket === ws && drop(c.code);
        ws.onerror = (e) => socket === ws && emit('error', e);
    }
    function receive(raw) {
        let m;
        try {
            m = JSON.parse(typeof raw === 'string' ? raw : new TextDecoder().decode(raw));
        }
        catch {
            return;
        }
        const t = m.type;
        if (t === 'event')
            return deliver(m);
        if (t === 'connected')
            return greeted(m);
        if (t === 'pong' && m.id === barrier && barrier != null) {
            // Every replay of this connection is done: all up to here, and to the hub's position at connect, is in.
            barrier = null;
            safe = lastSeq = Math.max(lastSeq, greetedSeq);
            seen.clear();
            return;
        }
        const r = pending.get(m.id);
        if (t === 'error' && r?.text && m.error?.code === 'idempotency_in_flight') {
            // The hub is still committing this publish from before a drop: ask again shortly (same key).
            pending.delete(m.id);
            const again = r.text;
            setTimeout(() => (ready ? (pending.set(m.id, r), socket?.send(again)) : outbox.push([m.id, again, r])), 100);
            return;
        }
        if (t === 'ack') {
            if (r) {
                pending.delete(m.id);
                r.ok(m);
            }
            if (m.channel != null)
                settle(m.channel);
            if (m.recovered === false)
                pruned();
        }
        else if (t === 'error') {
            const e = fail(m.error?.code || 'internal', m.error?.message || '');
            if (r) {
                pending.delete(m.id);
                r.no(e);
            }
            else
                emit('error', e);
        }
    }
    function greeted(m) {
        attempt = 0;
        ready = true;
        greetedSeq = m.last_seq;
        const before = epoch;
        const previousLastSeq = lastSeq;
        epoch = m.epoch;
        if (safe == null)
            safe = lastSeq = greetedSeq;
        // Another epoch, or a log behind our position: nothing we hold means anything here.
        const reset = safe != null && ((before && before !== epoch) || safe > greetedSeq);
        if (reset) {
            resynced = true;
            safe = lastSeq = greetedSeq;
            seen.clear();
        }
        setState('live');
        if (!ready)
            return; // a state handler closed it
        watch(m.heartbeat_s);
        for (const p of subs)
            if (!held.has(p)) {
                const resume = p.includes(',') && sentSince != null && !reset;
                apart || (apart = resume);
                subscribeFrame(p, resume);
            }
        for (const p of held)
            if (!subs.has(p)) {
                held.delete(p);
                request({ type: 'unsubscribe', channel: p }, { ok: noop, no: noop });
            }
        if (sentSince != null) {
            barrier = ++id;
            send({ type: 'ping', id });
        }
        const queued = outbox;
        outbox = [];
        for (const [i, text, entry] of queued) {
            pending.set(i, entry);
            socket?.send(text);
        }
        if (reset)
            emit('resync', { reason: 'epoch', epoch, previousEpoch: before, lastSeq, previousLastSeq });
    }
    /** The hub answered `recovered: false` for a subscription of this connection: events after `since` are gone. */
    function pruned() {
        if (resynced)
            return;
        resynced = true;
        const previousLastSeq = lastSeq;
        safe = Math.max(safe, greetedSeq);
        lastSeq = Math.max(lastSeq, greetedSeq);
        for (const s of seen)
            if (s <= safe)
                seen.delete(s);
        emit('resync', { reason: 'pruned', epoch, previousEpoch: epoch, lastSeq, previousLastSeq });
    }
    function deliver(m) {
        const { type, ...e } = m;
        const s = e.seq;
        if ((safe != null && s <= safe) || seen.has(s))
            return;
        if (barrier != null && apart)
            seen.add(s);
        else
            safe = s;
        lastSeq = lastSeq == null ? s : Math.max(lastSeq, s);
        if (!RESERVED.includes(e.event))
            emit(e.event, e);
        emit('*', e);
    }
    /** Pings every heartbeat; two silent heartbeats in a row mean the socket is dead even if it never said so. */
    function watch(seconds) {
        clearTimeout(watchdog);
        heard = true;
        misses = 0;
        const tick = () => {
            misses = heard ? 0 : misses + 1;
            heard = false;
            if (misses >= 2) {
                const ws = socket;
                detach(ws);
                return drop(4000);
            }
            send({ type: 'ping' });
            watchdog = setTimeout(tick, Math.max(1, seconds || 25) * 1000);
        };
        watchdog = setTimeout(tick, Math.max(1, seconds || 25) * 1000);
    }
    function detach(ws) {
        ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
        try {
            ws.close(1000);
        }
        catch {
            // already closing
        }
    }
    /** The socket is gone (any close code: 1001 shutdown, 4008 slow consumer, 1006 dead): reconnect. */
    function drop(code) {
        socket = null;
        ready = false;
        barrier = null;
        clearTimeout(watchdog);
        const gone = fail('disconnected', 'the connection dropped before the hub answered');
        // Publishes in flight go out again first, in order, with their keys: the hub commits each once.
        const again = [];
        for (const [i, r] of pending) {
            if (r.text)
                again.push([i, r.text, r]);
            else if (!r.sub)
                r.no(gone);
        }
        outbox = [...again, ...outbox];
        pending.clear();
        retry(code);
    }
    function retry(code) {
        if (closed)
            return;
        setState('offline');
        const delay = random() * Math.min(cap, delayBase * 2 ** attempt);
        emit('reconnect', { attempt, delay, code });
        attempt++;
        if (!closed)
            timer = setTimeout(open, delay); // unless a handler closed it
    }
    function handled(p) {
        p.catch(noop);
        return p;
    }
    open();
    return {
        on,
        subscribe(p) {
            return handled(new Promise((ok, no) => {
                if (closed)
                    return no(fail('closed', 'the connection is closed'));
                check(p);
                const list = waiters.get(p) || [];
                waiters.set(p, list);
                list.push([ok, no]);
                if (!subs.has(p)) {
                    subs.add(p);
                    if (ready)
                        subscribeFrame(p, false);
                }
                else if (ready && held.has(p))
                    settle(p);
            }));
        },
        unsubscribe(p) {
            subs.delete(p);
            settle(p, fail('closed', 'unsubscribed before the hub acknowledged it'));
            return handled(new Promise((ok) => {
                if (!ready || !held.has(p))
                    return ok();
                held.delete(p);
                request({ type: 'unsubscribe', channel: p }, { ok, no: () => ok() });
            }));
        },
        publish(channel, event, data) {
            return new Promise((ok, no) => {
                if (closed)
                    return no(fail('closed', 'the connection is closed'));
                const i = ++id;
                const frame = { type: 'publish', id: i, channel, event, data, idempotency_key: newKey() };
                const text = JSON.stringify(frame);
                if (text.length > 349525 && new TextEncoder().encode(text).length > 1 << 20)
                    return no(fail('payload_too_large', 'the frame is over the 1 MiB limit'));
                const entry = { ok: (m) => ok({ seq: m.seq }), no, text };
                if (ready) {
                    pending.set(i, entry);
                    socket.send(text);
                }
                else
                    outbox.push([i, text, entry]);
            });
        },
        close() {
            if (closed)
                return;
            closed = true;
            clearTimeout(timer);
            clearTimeout(watchdog);
            if (socket)
                detach(socket);
            socket = null;
            ready = false;
            const e = fail('closed', 'the connection is closed');
            for (const r of pending.values())
                r.no(e);
            pending.clear();
            for (const [, , r] of outbox)
                r.no(e);
            outbox = [];
            for (const p of [...waiters.keys()])
                settle(p, e);
            setState('closed');
        },
        get lastSeq() {
            return lastSeq;
        },
        get epoch() {
            return epoch;
        },
        get state() {
            return state;
        },
        get channels() {
            return [...subs];
        },
    };
}
function headers() {
    const h = { 'content-type': 'application/json' };
    if (settings.token)
        h.authorization = `Bearer ${settings.token}`;
    return h;
}
/** The old helper: publishes `eventType` with `data` on the `dev` channel (`POST /api/dev/webhook`). A refusal
 * comes back as `{success: false, message}`; a hub that cannot be reached rejects. */
export async function sendDevWebhook(eventType, data) {
    const res = await fetch(endpoint(settings.url || DEFAULT_URL, '/api/dev/webhook').href, {
        method: 'POST',
        headers: headers(),
        body: JSON.stringify({ event_type: eventType, data }),
    });
    const body = await res.json().catch(() => null);
    return res.ok ? body : { success: false, message: body?.error?.message || `HTTP ${res.status}` };
}
/** The old helper: calls `callback` with `{type, data, timestamp}` for every event the hub sends on
 * `GET /api/dev/events` (every channel), reconnecting by itself. Returns the function that stops it. */
export function subscribeToBackendEvents(callback) {
    const token = settings.token;
    const u = endpoint(settings.url || DEFAULT_URL, '/api/dev/events');
    const take = (text) => {
        let m;
        try {
            m = JSON.parse(text);
        }
        catch {
            return;
        }
        if (m.type !== 'connected' || 'data' in m)
            callback(m);
    };
    const ES = settings.EventSource || g.EventSource;
    if (ES) {
        if (token)
            u.searchParams.set('token', token);
        const es = new ES(u.href);
        es.onmessage = (m) => take(m.data);
        return () => es.close();
    }
    // No EventSource (Node 20): read the stream with fetch, and reconnect with Last-Event-ID as EventSource would.
    let stopped = false;
    let abort;
    let lastId = '';
    let retryMs = 1000;
    (async () => {
        while (!stopped) {
            try {
                abort = new AbortController();
                const h = { ...headers(), accept: 'text/event-stream' };
                if (lastId)
                    h['last-event-id'] = lastId;
                const res = await fetch(u.href, { headers: h, signal: abort.signal });
                if (!res.ok || !res.body)
                    throw 0;
                const reader = res.body.getReader();
                const dec = new TextDecoder();
                let buf = '';
                let data = [];
                for (;;) {
                    const { value, done } = await reader.read();
                    if (done)
                        break;
                    buf += dec.decode(value, { stream: true });
                    let nl;
                    while ((nl = buf.indexOf('\n')) >= 0) {
                        const line = buf.slice(0, nl).replace(/\r$/, '');
                        buf = buf.slice(nl + 1);
                        const c = line.indexOf(':');
                        const field = c < 0 ? line : line.slice(0, c);
                        const val = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
                        if (!line) {
                            if (data.length && !stopped)
                                take(data.join('\n'));
                            data = [];
                        }
                        else if (field === 'data')
                            data.push(val);
                        else if (field === 'id')
                            lastId = val;
                        else if (field === 'retry' && +val >= 0)
                            retryMs = +val;
                    }
                }
            }
            catch {
                // dropped or refused: retry below
            }
            if (!stopped)
                await new Promise((r) => setTimeout(r, retryMs));
        }
    })();
    return () => {
        stopped = true;
        abort?.abort();
    };
}
