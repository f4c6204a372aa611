// DOM helpers shared by the window's modules: `$` finds by id, `el` builds an element with properties, `dataset`
// and children, `say` sets a form's status line, `toast` and `copy`.
export const $ = (id) => document.getElementById(id);
export const el = (tag, { dataset, ...props } = {}, ...kids) => {
  const n = Object.assign(document.createElement(tag), props);
  if (dataset) Object.assign(n.dataset, dataset);
  for (const k of kids) n.append(k);
  return n;
};

// A status line next to a form: what happened, or the hub's refusal in red.
export function say(node, text, error = false) {
  node.textContent = text;
  node.title = text;
  node.classList.toggle('error', error);
}

export function toast(msg) {
  const t = el('div', { className: 'toast', textContent: msg });
  document.body.append(t);
  setTimeout(() => t.remove(), 1200);
}

export async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const ta = el('textarea', { value: text });
    document.body.append(ta);
    ta.select();
    document.execCommand('copy');
    ta.remove();
  }
  toast('Copied');
}
