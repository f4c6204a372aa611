// The hub's REST API (docs/protocol.md), as this app uses it. Where the hub is: `?hub=` in the page's URL, else
// VITE_SWITCHBOARD_URL at build time, else http://127.0.0.1:4747; the token likewise (`?token=`,
// VITE_SWITCHBOARD_TOKEN), needed only when the hub runs with --require-token.
const params = new URLSearchParams(location.search);
export const HUB = params.get('hub') || import.meta.env.VITE_SWITCHBOARD_URL || 'http://127.0.0.1:4747';
export const TOKEN: string | undefined = params.get('token') || import.meta.env.VITE_SWITCHBOARD_TOKEN || undefined;

export interface Agent {
  id: string;
  name: string;
  description: string;
  model: string | null;
  status: string;
  config: Record<string, unknown>;
  tags: string[];
  version: number;
  created_at: string;
  updated_at: string;
}

export interface AgentPage {
  agents: Agent[];
  next_cursor: string | null;
}

/** The hub's `{"error":{"code","message"}}`, with the HTTP status. */
export class HubError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
  ) {
    super(message);
  }
}

async function call<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
  const res = await fetch(HUB + path, {
    method,
    headers: {
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(TOKEN ? { authorization: `Bearer ${TOKEN}` } : {}),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 204) return undefined as T;
  const json = await res.json();
  if (!res.ok) throw new HubError(res.status, json.error?.code ?? 'error', json.error?.message ?? res.statusText);
  return json as T;
}

export const listAgents = () => call<AgentPage>('GET', '/api/agents?limit=500');
export const getAgent = (id: string) => call<Agent>('GET', `/api/agents/${encodeURIComponent(id)}`);
export const createAgent = (a: { name: string; model?: string }) => call<Agent>('POST', '/api/agents', a);
/** A merge-patch that only applies to `version` (412 if someone changed it first). */
export const updateAgent = (id: string, version: number, patch: Partial<Pick<Agent, 'name' | 'status' | 'description'>>) =>
  call<Agent>('PATCH', `/api/agents/${encodeURIComponent(id)}`, patch, { 'if-match': `"${version}"` });
export const deleteAgent = (id: string) => call<void>('DELETE', `/api/agents/${encodeURIComponent(id)}`);
