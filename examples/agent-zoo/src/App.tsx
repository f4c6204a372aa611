// The zoo: the hub's agents, a form to add one, and an editor for the one selected. Every change goes over REST;
// every change anyone makes (this tab, another tab, an IDE through MCP) comes back as an event, and useAgentSync
// turns it into a React Query invalidation or an in-place update. Nothing here polls or refetches by hand.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState, type FormEvent } from 'react';
import { useAgentSync } from 'switchboard-client/react';
import { createAgent, deleteAgent, getAgent, HUB, HubError, listAgents, TOKEN, updateAgent, type Agent } from './api';

const STATUSES = ['idle', 'busy', 'sleeping', 'error'];

export function App() {
  const queryClient = useQueryClient();
  const [lastEvent, setLastEvent] = useState('');
  const { state } = useAgentSync(queryClient, {
    url: HUB,
    token: TOKEN,
    onEvent: (e) => setLastEvent(`#${e.seq} ${e.event} ${e.data.name ?? e.data.id} (${e.source})`),
  });
  const [selected, setSelected] = useState<string | null>(null);
  return (
    <main>
      <header>
        <h1>Agent zoo</h1>
        <span className={`state ${state}`} data-testid="state">
          {state}
        </span>
        <span className="last" data-testid="last-event">
          {lastEvent}
        </span>
      </header>
      <div className="columns">
        <section>
          <NewAgent onCreated={setSelected} />
          <AgentList selected={selected} onSelect={setSelected} />
        </section>
        <section>{selected ? <Editor key={selected} id={selected} onGone={() => setSelected(null)} /> : <p className="hint">Pick an agent to edit it.</p>}</section>
      </div>
    </main>
  );
}

function AgentList({ selected, onSelect }: { selected: string | null; onSelect: (id: string) => void }) {
  const { data, error, isPending } = useQuery({ queryKey: ['agents'], queryFn: listAgents });
  if (isPending) return <p>Loading…</p>;
  if (error) return <p className="error">{error.message}</p>;
  if (data.agents.length === 0) return <p className="hint" data-testid="empty">No agents yet.</p>;
  return (
    <ul className="agents" data-testid="agents">
      {data.agents.map((a) => (
        <li key={a.id} data-agent-id={a.id} className={a.id === selected ? 'selected' : ''} onClick={() => onSelect(a.id)}>
          <span className="name">{a.name}</span>
          <span className={`status ${a.status}`}>{a.status}</span>
          <span className="version">v{a.version}</span>
        </li>
      ))}
    </ul>
  );
}

function NewAgent({ onCreated }: { onCreated: (id: string) => void }) {
  const [name, setName] = useState('');
  const create = useMutation({
    mutationFn: createAgent,
    onSuccess: (a) => {
      setName('');
      onCreated(a.id);
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate({ name });
  };
  return (
    <form onSubmit={submit} className="new">
      <input aria-label="New agent's name" placeholder="New agent's name" value={name} onChange={(e) => setName(e.target.value)} />
      <button type="submit" disabled={create.isPending}>
        Add
      </button>
      {create.error && <p className="error">{create.error.message}</p>}
    </form>
  );
}

function Editor({ id, onGone }: { id: string; onGone: () => void }) {
  const queryClient = useQueryClient();
  const { data: agent, error } = useQuery({ queryKey: ['agent', id], queryFn: () => getAgent(id) });
  if (error) return <p className="error" data-testid="editor-error">{error instanceof HubError && error.status === 404 ? 'This agent was deleted.' : error.message}</p>;
  if (!agent) return <p>Loading…</p>;
  // Re-mounted per version, so the form starts from what the hub has now.
  return <EditorForm key={agent.version} agent={agent} onSaved={(a) => queryClient.setQueryData(['agent', id], a)} onGone={onGone} />;
}

function EditorForm({ agent, onSaved, onGone }: { agent: Agent; onSaved: (a: Agent) => void; onGone: () => void }) {
  const [name, setName] = useState(agent.name);
  const [status, setStatus] = useState(agent.status);
  // The PATCH answer goes straight into ['agent', id]; the event that follows carries the same version, so
  // useAgentSync leaves that query alone.
  const save = useMutation({ mutationFn: () => updateAgent(agent.id, agent.version, { name, status }), onSuccess: onSaved });
  const remove = useMutation({ mutationFn: () => deleteAgent(agent.id), onSuccess: onGone });
  return (
    <form
      className="editor"
      data-testid="editor"
      onSubmit={(e) => {
        e.preventDefault();
        save.mutate();
      }}
    >
      <h2>
        {agent.name} <small>v{agent.version}</small>
      </h2>
      <label>
        Name <input aria-label="Name" value={name} onChange={(e) => setName(e.target.value)} />
      </label>
      <label>
        Status{' '}
        <select aria-label="Status" value={status} onChange={(e) => setStatus(e.target.value)}>
          {[...new Set([...STATUSES, agent.status])].map((s) => (
            <option key={s}>{s}</option>
          ))}
        </select>
      </label>
      <div className="buttons">
        <button type="submit" disabled={save.isPending}>
          Save
        </button>
        <button type="button" className="danger" onClick={() => remove.mutate()} disabled={remove.isPending}>
          Delete
        </button>
      </div>
      {save.error && (
        <p className="error">
          {save.error instanceof HubError && save.error.status === 412 ? 'Someone changed it first; this shows their version now.' : save.error.message}
        </p>
      )}
      <p className="meta">
        updated {agent.updated_at} · created {agent.created_at}
      </p>
    </form>
  );
}
