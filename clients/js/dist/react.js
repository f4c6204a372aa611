// switchboard-client/react: keeps a React Query cache in step with the hub's agent events (SPEC §12).
// syncAgents() is the logic, for any QueryClient (React Query, or @tanstack/query-core without React);
// useAgentSync() runs it for the life of a component and reports the connection state. React is a peer
// dependency; nothing else is imported but ./client.js.
import { useEffect, useRef, useState } from 'react';
import { connect, } from './client.js';
const isAgent = (v, id) => !!v && typeof v === 'object' && v.id === id && typeof v.version === 'number';
/** The fields an `agent.updated` carries a value for, or null when it does not carry every changed one. */
function carried(d) {
    const changed = Array.isArray(d.changed) ? d.changed : null;
    if (!changed || typeof d.version !== 'number')
        return null;
    const out = { version: d.version };
    for (const f of changed) {
        if (f === 'id' || f === 'version' || f === 'changed' || !(f in d))
            return null;
        out[f] = d[f];
    }
    return out;
}
/** What to do with one cached agent: nothing (`current`), this replacement, or refetch (null). */
function next(agent, d, ts, inPlace) {
    if (typeof d.version !== 'number')
        return null;
    if (agent.version >= d.version)
        return 'current';
    const fields = inPlace && agent.version === d.version - 1 ? carried(d) : null;
    if (!fields)
        return null;
    return { ...agent, ...fields, ...('updated_at' in agent ? { updated_at: ts } : {}) };
}
/** The agents of a list query's data, and how to rebuild it: an array, `{agents: […]}` (the REST shape), or
 * React Query's infinite `{pages: [those], pageParams}`. */
function lists(data) {
    if (Array.isArray(data))
        return { arrays: [data], rebuild: ([a]) => a };
    if (data && typeof data === 'object') {
        const o = data;
        if (Array.isArray(o.agents))
            return { arrays: [o.agents], rebuild: ([a]) => ({ ...o, agents: a }) };
        if (Array.isArray(o.pages)) {
            const pages = o.pages.map(lists);
            if (pages.every(Boolean)) {
                const counts = pages.map((p) => p.arrays.length);
                return {
                    arrays: pages.flatMap((p) => p.arrays),
                    rebuild: (arrays) => {
                        let i = 0;
                        return { ...o, pages: pages.map((p, n) => p.rebuild(arrays.slice(i, (i += counts[n])))) };
                    },
                };
            }
        }
    }
    return null;
}
/** Follows `agent:*` and keeps the agent queries of `queryClient` in step:
 * - `agent.created`, `agent.deleted`: the list queries (`[listKey, …]`) are invalidated (and `[detailKey, id]`
 *   on delete);
 * - `agent.updated`: `[detailKey, id]` and the lists are invalidated, except where the cache already holds that
 *   version or newer, or, with `inPlace`, where the event carries every changed field for the next version (a
 *   rename): then `[detailKey, id]` and the unfiltered list `[listKey]` are updated in place (`version` and
 *   `updated_at` too); filtered lists (`[listKey, {…}]`) are refetched, since the change may move it in or out;
 * - a resync (`recovered: false`), and the first time the connection is live (events before it were not seen),
 *   invalidate every agent query. */
export function syncAgents(queryClient, options = {}) {
    const { connection: given, listKey = 'agents', detailKey = 'agent', inPlace = true, onEvent, ...connectOptions } = options;
    const own = !given;
    const conn = given ?? connect({ ...connectOptions, channels: [...(connectOptions.channels ?? []), 'agent:*'] });
    const qc = queryClient;
    const invalidate = (queryKey, exact = false) => void qc.invalidateQueries({ queryKey, exact });
    const everything = () => void qc.invalidateQueries({
        predicate: (q) => q.queryKey[0] === listKey || q.queryKey[0] === detailKey,
    });
    function updated(d, ts) {
        const detail = [detailKey, d.id];
        const cached = qc.getQueryData(detail);
        const one = isAgent(cached, d.id) ? next(cached, d, ts, inPlace) : null;
        if (one === null)
            invalidate(detail);
        else if (one !== 'current')
            qc.setQueryData(detail, one);
        for (const [key, data] of qc.getQueriesData({ queryKey: [listKey] })) {
            // Only the unfiltered list is patched: in `['agents', {status}]` the change may move the agent in or out.
            const patchable = key.length === 1;
            const l = lists(data);
            let found = false;
            let stale = false;
            let patched = false;
            const arrays = l?.arrays.map((arr) => arr.map((a) => {
                if (!isAgent(a, d.id))
                    return a;
                found = true;
                const n = next(a, d, ts, inPlace);
                if (n === null || (n !== 'current' && !patchable))
                    stale = true;
                else if (n !== 'current') {
                    patched = true;
                    return n;
                }
                return a;
            }));
            if (!l || !found || stale)
                invalidate(key, true);
            else if (patched)
                qc.setQueryData(key, l.rebuild(arrays));
        }
    }
    const offs = [
        conn.on('*', (e) => {
            const d = e.data;
            if (!e.channel.startsWith('agent:') || !d || typeof d !== 'object' || typeof d.id !== 'string')
                return;
            if (e.event === 'agent.created')
                invalidate([listKey]);
            else if (e.event === 'agent.deleted') {
                invalidate([listKey]);
                invalidate([detailKey, d.id]);
            }
            else if (e.event === 'agent.updated')
                updated(d, e.ts);
            else
                return;
            onEvent?.(e);
        }),
        conn.on('resync', (_) => everything()),
    ];
    let first = true;
    const live = (s) => {
        if (s === 'live' && first) {
            first = false;
            everything();
        }
    };
    if (conn.state === 'live')
        live('live');
    offs.push(conn.on('state', live));
    if (given)
        void conn.subscribe('agent:*').catch(() => { });
    return {
        connection: conn,
        stop() {
            for (const off of offs)
                off();
            if (own)
                conn.close();
        },
    };
}
/** `syncAgents` for the life of the component: connects on mount (and when `url`, `token`, `connection` or
 * `enabled` change), closes on unmount. Callbacks may change between renders without reconnecting. */
export function useAgentSync(queryClient, options = {}) {
    const [state, setState] = useState({ state: 'connecting', connection: null });
    const latest = useRef(options);
    latest.current = options;
    const { url, token, connection, enabled = true } = options;
    const channels = (options.channels ?? []).join(',');
    useEffect(() => {
        if (!enabled) {
            setState({ state: 'closed', connection: null });
            return;
        }
        const o = latest.current;
        const sync = syncAgents(queryClient, {
            ...o,
            onEvent: (e) => latest.current.onEvent?.(e),
            onResync: (info) => latest.current.onResync?.(info),
        });
        const c = sync.connection;
        setState({ state: c.state, connection: c });
        const off = c.on('state', (s) => setState({ state: s, connection: c }));
        return () => {
            off();
            sync.stop();
        };
    }, [queryClient, url, token, connection, enabled, channels]);
    return state;
}
