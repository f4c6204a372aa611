// The Switchboard window. It talks to the hub only through its public API (REST and the /ws WebSocket), the same
// way any webapp does. Served by the hub at / and shown by the desktop app. Its modules: dom.js (DOM helpers), hub.js
// (`api()` and where the hub is), plot.js (events per second), tools.js (the publish box and the watched folders).

import { $, copy, el, say, toast } from './dom.js';
import { api, base, describe, params, token, wsBase } from './hub.js';
import { countForPlot, drawPlot } from './plot.js';
import { loadWatches, onWatchEvent } from './tools.js';

const ROW = 26; // px, matches --row
const MAX_EVENTS = 100_000;

// ---- tabs ----
for (const b of document.querySelectorAll('[data-tab]')) {
  b.addEventListener('click', () => showTab(b.dataset.tab));
}
for (const a of document.querySelectorAll('[data-goto]')) {
  a.addEventListener('click', (ev) => {
    ev.preventDefault();
    showTab(a.dataset.goto);
  });
}
function showTab(name) {
  for (const b of document.querySelectorAll('[data-tab]')) b.setAttribute('aria-selected', String(b.dataset.tab === name));
  for (const p of document.querySelectorAll('[data-panel]')) p.hidden = p.dataset.panel !== name;
  if (name === 'clients') refreshClients();
  if (name === 'connect') loadConnect();
  if (name === 'files') loadWatches();
  if (name === 'events') render();
}

// ---- the event log: every event in `events`, the filtered view in `view` (newest first), virtualised ----
const events = [];
let view = [];
let lastSeq = null;
let selectedSeq = null;
let paused = false;
const filters = { channel: '', event: '', source: '', text: '' };

function patternMatch(pattern, value) {
  if (!pattern) return true;
  if (pattern.endsWith('*')) return value.startsWith(pattern.slice(0, -1));
  return value === pattern;
}
function summary(e) {
  if (e._summary === undefined) {
    const s = JSON.stringify(e.data);
    e._summary = s === undefined ? '' : s.length > 160 ? s.slice(0, 160) + '…' : s;
  }
  return e._summary;
}
function matches(e) {
  if (!patternMatch(filters.channel, e.channel)) return false;
  if (!patternMatch(filters.event, e.event)) return false;
  if (filters.source && e.source !== filters.source) return false;
  if (filters.text) {
    if (e._text === undefined) e._text = `${e.channel} ${e.event} ${e.source} ${JSON.stringify(e.data)}`.toLowerCase();
    if (!e._text.includes(filters.text)) return false;
  }
  return true;
}
function refilter() {
  view = [];
  for (let i = events.length - 1; i >= 0; i--) if (matches(events[i])) view.push(events[i]);
  render();
}
for (const [id, key] of [['f-channel', 'channel'], ['f-event', 'event'], ['f-source', 'source'], ['f-text', 'text']]) {
  $(id).addEventListener('input', (ev) => {
    filters[key] = key === 'text' ? ev.target.value.trim().toLowerCase() : ev.target.value.trim();
    refilter();
  });
}

const log = $('log');
const spacer = $('log-spacer');
const pool = [];
let renderQueued = false;
function scheduleRender() {
  if (!renderQueued) {
    renderQueued = true;
    requestAnimationFrame(() => {
      renderQueued = false;
      render();
    });
  }
}
function time(ts) {
  return ts.slice(11, 23);
}
function render() {
  spacer.style.height = `${view.length * ROW}px`;
  const first = Math.max(0, Math.floor(log.scrollTop / ROW) - 5);
  const count = Math.ceil(log.clientHeight / ROW) + 10;
  const last = Math.min(view.length, first + count);
  while (pool.length < last - first) {
    const r = el('div', { className: 'row' }, el('span'), el('span'), el('span'), el('span'), el('span'));
    r.addEventListener('click', () => openDetail(r._event));
    log.append(r);
    pool.push(r);
  }
  for (let i = 0; i < pool.length; i++) {
    const r = pool[i];
    const e = view[first + i];
    if (!e || first + i >= last) {
      r.hidden = true;
      continue;
    }
    r.hidden = false;
    r.style.top = `${(first + i) * ROW}px`;
    if (r._event !== e) {
      r._event = e;
      r.dataset.seq = e.seq;
      const [t, s, c, n, m] = r.children;
      t.textContent = time(e.ts);
      s.replaceChildren(el('span', { className: `badge ${e.source}`, textContent: e.source }));
      c.textContent = c.title = e.channel;
      n.textContent = e.event;
      m.textContent = summary(e);
    }
    r.classList.toggle('selected', e.seq === selectedSeq);
  }
  // An empty hub says what to do next; a hub with history shows it as soon as it arrives.
  const empty = events.length === 0 && hubLastSeq === 0;
  if (empty && $('log-empty').hidden) fillEmptyState();
  $('log-empty').hidden = !empty;
  $('shown').textContent = view.length === events.length ? `${events.length} events` : `${view.length} of ${events.length} events`;
}
log.addEventListener('scroll', scheduleRender);
window.addEventListener('resize', scheduleRender);

function openDetail(e) {
  if (!e) return;
  selectedSeq = e.seq;
  const { _summary, _text, ...envelope } = e;
  $('detail-title').textContent = `#${e.seq} ${e.event}${e.replay_of ? ` (replay of #${e.replay_of})` : ''}`;
  $('detail-json').textContent = JSON.stringify(envelope, null, 2);
  $('detail').hidden = false;
  render();
}
$('detail-close').addEventListener('click', () => {
  $('detail').hidden = true;
  selectedSeq = null;
  render();
});
$('detail-copy').addEventListener('click', () => copy($('detail-json').textContent));
// Replay: the hub publishes a copy as a new event (`source: system`, `replay_of` the original's seq).
$('detail-replay').addEventListener('click', async () => {
  const seq = selectedSeq;
  if (seq === null) return;
  $('detail-replay').disabled = true;
  try {
    const r = await api(`/api/events/${seq}/replay`, { method: 'POST', body: '{}' });
    toast(`Replayed #${seq} as #${r.seq}`);
  } catch (err) {
    toast(`Replay refused: ${describe(err)}`);
  } finally {
    $('detail-replay').disabled = false;
  }
});

// ---- live connection: /ws with resume from the last seq ----
let ws = null;
let backoff = 500;
let rate = 0;
let hubLastSeq = null; // the hub's newest seq when we connected: 0 means its log is empty

function addEvent(e) {
  if (lastSeq !== null && e.seq <= lastSeq) return; // a replay overlapping what we have
  lastSeq = e.seq;
  events.push(e);
  if (events.length > MAX_EVENTS) events.splice(0, events.length - MAX_EVENTS);
  if (matches(e)) view.unshift(e);
  if (view.length > MAX_EVENTS) view.length = MAX_EVENTS;
  rate++;
  countForPlot(e);
  $('s-seq').textContent = e.seq;
  onDomainEvent(e);
  scheduleRender();
}

function connect() {
  if (paused) return;
  const q = new URLSearchParams({ channels: '*' });
  if (lastSeq !== null) q.set('since', lastSeq);
  if (token) q.set('token', token);
  ws = new WebSocket(`${wsBase}/ws/window-${Math.random().toString(36).slice(2, 8)}?${q}`);
  ws.onopen = () => {
    backoff = 500;
    $('s-conn').textContent = 'live';
    $('s-conn').className = 'dot live';
  };
  ws.onmessage = (m) => {
    const f = JSON.parse(m.data);
    if (f.type === 'event') {
      const { type, ...envelope } = f;
      addEvent(envelope);
    } else if (f.type === 'connected') {
      hubLastSeq = f.last_seq;
      scheduleRender();
    }
    else if (f.type === 'ack' && f.recovered === false) toast('Some events were too old to replay');
  };
  ws.onclose = () => {
    ws = null;
    $('s-conn').textContent = paused ? 'paused' : 'reconnecting';
    $('s-conn').className = 'dot down';
    if (!paused) setTimeout(connect, backoff + Math.random() * 250);
    backoff = Math.min(backoff * 2, 10_000);
  };
}

$('pause').addEventListener('click', () => {
  paused = !paused;
  $('pause').setAttribute('aria-pressed', String(paused));
  $('pause').textContent = paused ? 'Resume' : 'Pause';
  if (paused) {
    ws?.close(1000, 'paused');
  } else {
    connect(); // with since = the last seq seen: the hub replays what arrived while paused
  }
});


// ---- agents ----
const agents = new Map();
function renderAgents() {
  const rows = [...agents.values()].sort((a, b) => a.created_at.localeCompare(b.created_at));
  $('agents').replaceChildren(
    ...rows.map((a) =>
      el('tr', { dataset: { id: a.id } },
        el('td', { textContent: a.name, title: a.id }),
        el('td', {}, el('span', { className: 'badge', textContent: a.status })),
        el('td', { textContent: a.model ?? '—' }),
        el('td', { textContent: a.version }),
        el('td', { textContent: a.tags.join(', ') }),
        el('td', { textContent: a.updated_at.replace('T', ' ').slice(0, 19) }),
      ),
    ),
  );
  $('agents-empty').hidden = rows.length > 0;
}
async function loadAgents() {
  let cursor = '';
  agents.clear();
  do {
    const page = await api(`/api/agents?limit=500${cursor ? `&cursor=${cursor}` : ''}`);
    for (const a of page.agents) agents.set(a.id, a);
    cursor = page.next_cursor || '';
  } while (cursor);
  renderAgents();
}

// ---- questions ----
const questions = new Map();
function renderQuestions() {
  const list = [...questions.values()];
  $('questions').replaceChildren(
    ...list.map((q) => {
      // Sends one answer; the buttons of a question with `options`, or the text box and its button.
      const reply = async (value, buttons) => {
        for (const b of buttons) b.disabled = true;
        try {
          await api(`/api/questions/${encodeURIComponent(q.question_id)}/answer`, { method: 'POST', body: JSON.stringify({ answer: value }) });
          questions.delete(q.question_id);
          renderQuestions();
        } catch (err) {
          toast(describe(err));
          for (const b of buttons) b.disabled = false;
        }
      };
      let controls;
      if (Array.isArray(q.options) && q.options.length) {
        const buttons = q.options.map((o) => el('button', { type: 'button', textContent: o, className: 'choice' }));
        buttons.forEach((b, i) => b.addEventListener('click', () => reply(q.options[i], buttons)));
        controls = [el('div', { className: 'choices' }, ...buttons)];
      } else {
        const answer = el('textarea', { placeholder: 'Your answer', ariaLabel: `Answer to: ${q.question}` });
        const send = el('button', { type: 'button', textContent: 'Answer' });
        send.addEventListener('click', () => reply(answer.value, [send]));
        controls = [answer, send];
      }
      const until = q.expires_at ? ` · until ${time(q.expires_at)}` : '';
      return el('div', { className: 'question', dataset: { id: q.question_id } },
        el('div', { className: 'meta', textContent: `${q.channel} · ${q.asked_at ?? ''}${until}` }),
        el('div', { className: 'text', textContent: q.question }), ...controls);
    }),
  );
  $('questions-empty').hidden = list.length > 0;
  $('question-count').hidden = list.length === 0;
  $('question-count').textContent = list.length;
}
async function loadQuestions() {
  const { questions: list } = await api('/api/questions');
  questions.clear();
  for (const q of list) questions.set(q.question_id, q);
  renderQuestions();
}

function onDomainEvent(e) {
  if (e.event === 'agent.created' || e.event === 'agent.updated') {
    api(`/api/agents/${e.data.id}`).then((a) => {
      agents.set(a.id, a);
      renderAgents();
    }, () => {});
  } else if (e.event === 'agent.deleted') {
    agents.delete(e.data.id);
    renderAgents();
  } else if (e.event === 'question' && e.data?.question_id && e.data.via !== 'ide') {
    // (A question asked only in the IDE is that user's to answer.)
    questions.set(e.data.question_id, { ...e.data, channel: e.channel, asked_at: e.ts });
    renderQuestions();
  } else if ((e.event === 'question.answered' || e.event === 'question.withdrawn') && e.data?.question_id) {
    questions.delete(e.data.question_id);
    renderQuestions();
  } else if (e.channel === 'files' && e.event.startsWith('watch.')) {
    onWatchEvent(e);
  }
}

// ---- clients ----
async function refreshClients() {
  const { clients } = await api('/api/clients');
  $('clients-empty').hidden = !clients.every((c) => c.id.startsWith('window-'));
  $('clients').replaceChildren(
    ...clients.map((c) =>
      el('tr', {},
        el('td', {}, el('code', { textContent: c.id })),
        el('td', {}, el('span', { className: `badge ${c.transport}`, textContent: c.transport })),
        el('td', { textContent: c.origin ?? '—' }),
        el('td', {
          textContent: [
            ...c.subscriptions,
            ...(c.presence ?? []).map((m) => `${m.channel} as ${m.user_id}`),
            ...(c.signed_in_as ? [`signed in as ${c.signed_in_as}`] : []),
          ].join(', '),
        }),
        el('td', { textContent: c.connected_at.replace('T', ' ').slice(0, 19) }),
        el('td', { textContent: c.sent }),
        el('td', { textContent: c.received }),
        el('td', { textContent: c.queued }),
      ),
    ),
  );
}
setInterval(() => {
  if (!$('tab-clients').hidden) refreshClients().catch(() => {});
}, 2000);

// ---- connect ----
let connectInfo = null;
// The WebSocket snippet, shown in Connect and in the empty log.
const jsSnippet = (c) => [
  `const ws = new WebSocket('${c.ws_url}?channels=agent:*${c.require_token ? '&token=<token>' : ''}');`,
  `ws.onmessage = (m) => {`,
  `  const f = JSON.parse(m.data);`,
  `  if (f.type === 'event') console.log(f.seq, f.event, f.data);`,
  `};`,
].join('\n');
async function loadConnect() {
  connectInfo = connectInfo || (await api('/api/connect'));
  const c = connectInfo;
  $('c-ws').textContent = `${c.ws_url}?channels=agent:*`;
  $('c-sse').textContent = `${c.sse_url}?channels=agent:*`;
  $('c-rest').textContent = `${c.url}/api/agents`;
  $('c-token').dataset.secret = c.token;
  $('c-token').textContent = c.token ? `••••••••${c.token.slice(-4)}` : '(none)';
  $('c-js').textContent = jsSnippet(c);
  $('c-sio').textContent = [
    `import { io } from 'socket.io-client';`,
    `let since;   // the last seq seen: sent again on every reconnect, so the hub resumes from it`,
    `const socket = io('${c.url}', { auth: (cb) => cb({ since, channels: ['agent:*']${c.require_token ? ", token: '<token>'" : ''} }) });`,
    `socket.on('agent.updated', (e) => { since = e.seq; console.log(e.data); });`,
  ].join('\n');
  const p = c.pusher;
  const host = new URL(c.url);
  $('c-pusher-app').textContent = p.app_id;
  $('c-pusher-key').textContent = p.key;
  $('c-pusher-secret').dataset.secret = p.secret ?? '';
  $('c-pusher-secret').textContent = p.secret ? `••••••••${p.secret.slice(-4)}` : '(owner only)';
  $('c-pusher').textContent = [
    `import Pusher from 'pusher-js';   // hub channels spell ':' as ';' (agent:7f3c is agent;7f3c)`,
    `const pusher = new Pusher('${p.key}', { wsHost: '${host.hostname}', wsPort: ${host.port || 80}, forceTLS: false,`,
    `  enabledTransports: ['ws'], cluster: 'local', channelAuthorization: { endpoint: '${c.url}/pusher/auth', transport: 'ajax' } });`,
    `pusher.subscribe('project;42').bind('build.done', (data) => console.log(data));`,
  ].join('\n');
  await loadIde();
}
async function loadIde() {
  const s = await api(`/api/ide/${$('c-ide').value}${$('c-ide-http').checked ? '?http=1' : ''}`);
  $('c-ide-file').textContent = s.file ? `Add to ${s.file}` : 'Run in a terminal';
  $('c-ide-text').textContent = s.text;
}
// The empty log's next steps: the same WebSocket snippet and the `claude mcp add …` line the Connect panel shows.
async function fillEmptyState() {
  try {
    connectInfo = connectInfo || (await api('/api/connect'));
    $('e-js').textContent = jsSnippet(connectInfo);
    $('e-ide').textContent = (await api('/api/ide/claude')).text;
  } catch (err) {
    $('e-ide').textContent = `(could not ask the hub: ${describe(err)})`;
  }
}
$('c-ide').addEventListener('change', loadIde);
$('c-ide-http').addEventListener('change', loadIde);
$('c-token-show').addEventListener('click', () => {
  const t = $('c-token');
  t.textContent = t.textContent.startsWith('•') ? t.dataset.secret : `••••••••${t.dataset.secret.slice(-4)}`;
});
$('c-token-copy').addEventListener('click', () => copy($('c-token').dataset.secret));
$('c-pusher-secret-copy').addEventListener('click', () => copy($('c-pusher-secret').dataset.secret));
for (const n of document.querySelectorAll('.copyable')) n.addEventListener('click', () => copy(n.textContent));

// ---- status bar ----
$('s-url').textContent = base;
async function refreshHealth() {
  try {
    const h = await api('/health');
    const s = h.uptime_s;
    $('s-uptime').textContent = s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m` : `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  } catch {
    $('s-uptime').textContent = '–';
  }
}
setInterval(() => {
  $('s-rate').textContent = rate;
  rate = 0;
}, 1000);
setInterval(refreshHealth, 5000);

// Open on recent history: resume from 500 events back, so the hub replays them from its log, then goes live.
async function start() {
  try {
    const h = await api('/health');
    lastSeq = Math.max(0, h.last_seq - 500);
  } catch {
    lastSeq = 0;
  }
  connect();
  render();
  refreshHealth();
  loadAgents().catch((e) => console.warn('agents', e));
  loadQuestions().catch((e) => console.warn('questions', e));
  loadWatches();
  drawPlot();
}
// The desktop app shows a startup problem (for example the port taken by another program) instead of the log.
const startupError = params.get('error');
if (startupError) {
  document.querySelector('main').replaceChildren(el('p', { className: 'startup-error', textContent: startupError }));
  $('s-conn').textContent = 'no hub';
  $('s-conn').className = 'dot down';
} else {
  start();
}
