import { type Connection, type ConnectOptions, type ConnectionState, type SwitchboardEvent } from './client.js';
/** What `syncAgents` needs of a QueryClient: React Query 5's (and 4's object forms) fit. */
export interface QueryClientLike {
    invalidateQueries(filters?: any, options?: any): Promise<unknown> | unknown;
    getQueryData(queryKey: any): unknown;
    setQueryData(queryKey: any, updater: any, options?: any): unknown;
    getQueriesData(filters: any): Array<[readonly unknown[], unknown]>;
}
/** The agent data of `agent.*` events (docs/protocol.md): ids and field names, never `config` values. */
export interface AgentEventData {
    id: string;
    name?: string;
    version?: number;
    /** `agent.updated`: the names of the fields that changed. */
    changed?: string[];
    [field: string]: unknown;
}
export interface AgentSyncOptions extends ConnectOptions {
    /** Use this connection (subscribed to `agent:*` by the sync) instead of opening one; it is not closed after. */
    connection?: Connection;
    /** The first element of the list queries' keys. Default `'agents'`: `['agents']`, `['agents', {status}]`, … */
    listKey?: string;
    /** The first element of the one-agent queries' keys. Default `'agent'`: `['agent', id]`. */
    detailKey?: string;
    /** Update cached agents in place from an `agent.updated` that carries every changed field and the next version
     * (a rename), instead of refetching them. Default true. */
    inPlace?: boolean;
    /** Called with every agent event, after the cache was updated. */
    onEvent?: (event: SwitchboardEvent<AgentEventData>) => void;
}
export interface AgentSync {
    connection: Connection;
    /** Stops following; closes the connection unless it was given. */
    stop(): void;
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
export declare function syncAgents(queryClient: QueryClientLike, options?: AgentSyncOptions): AgentSync;
/** What `useAgentSync` returns: the connection's state (for a live/offline badge) and the connection itself
 * (null until the effect ran, or while `enabled` is false). */
export interface AgentSyncState {
    state: ConnectionState;
    connection: Connection | null;
}
/** `syncAgents` for the life of the component: connects on mount (and when `url`, `token`, `connection` or
 * `enabled` change), closes on unmount. Callbacks may change between renders without reconnecting. */
export declare function useAgentSync(queryClient: QueryClientLike, options?: AgentSyncOptions & {
    enabled?: boolean;
}): AgentSyncState;
