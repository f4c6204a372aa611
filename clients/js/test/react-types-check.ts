// Compile-only check of dist/react.d.ts (`npm run typecheck`, and test/types.test.mjs): uses every export of the
// react entry point with a real QueryClient (@tanstack/query-core's, the one React Query re-exports), and marks
// misuse that must not compile.
import { QueryClient } from '@tanstack/query-core';
import { connect, type ConnectionState, type SwitchboardEvent } from '../dist/client.js';
import {
  syncAgents,
  useAgentSync,
  type AgentEventData,
  type AgentSync,
  type AgentSyncOptions,
  type AgentSyncState,
  type QueryClientLike,
} from '../dist/react.js';

const queryClient = new QueryClient();
const fits: QueryClientLike = queryClient; // React Query 5's client fits the structural type

const options: AgentSyncOptions = {
  url: 'http://127.0.0.1:4747',
  token: 'token',
  channels: ['project:42'],
  listKey: 'agents',
  detailKey: 'agent',
  inPlace: false,
  onEvent: (e: SwitchboardEvent<AgentEventData>) => {
    const changed: string[] | undefined = e.data.changed;
    const id: string = e.data.id;
    void [changed, id];
  },
  onResync: (info) => void info.reason,
};
const sync: AgentSync = syncAgents(fits, options);
sync.stop();
const shared = connect({ channels: ['agent:*'] });
syncAgents(queryClient, { connection: shared }).stop();

// In a component:
function Badge(): string {
  const { state, connection }: AgentSyncState = useAgentSync(queryClient, { enabled: true, onEvent: () => {} });
  const s: ConnectionState = state;
  void connection?.publish('project:42', 'note', { text: 'hi' });
  return s;
}
void Badge;
useAgentSync(queryClient);

// Misuse that must not compile:
// @ts-expect-error a QueryClient is required
useAgentSync();
// @ts-expect-error not a QueryClient
syncAgents({}, {});
// @ts-expect-error listKey is a string
useAgentSync(queryClient, { listKey: ['agents'] });
// @ts-expect-error the state is a ConnectionState
const wrong: 'open' = useAgentSync(queryClient).state;
void wrong;
