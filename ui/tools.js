// The window's tools: the publish box (POST /api/events, the data checked as JSON before anything is sent) and the
// file watcher's roots (GET/POST/DELETE /api/watches, listed again on `watch.*` events).
import { $, el, say } from './dom.js';
import { api, describe } from './hub.js';

// ---- the publish box: POST /api/events, with the data checked as JSON before anything is sent ----
$('publish').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const status = $('p-status');
  const text = $('p-data').value.trim();
  let data;
  try {
    data = text === '' ? null : JSON.parse(text);
  } catch (err) {
    $('p-data').setAttribute('aria-invalid', 'true');
    say(status, `Not sent: data is not valid JSON (${err.message})`, true);
    return;
  }
  $('p-data').removeAttribute('aria-invalid');
  $('p-send').disabled = true;
  try {
    const body = JSON.stringify({ channel: $('p-channel').value.trim(), event: $('p-event').value.trim(), data });
    const r = await api('/api/events', { method: 'POST', body });
    say(status, `Published #${r.seq}`);
  } catch (err) {
    say(status, `Refused: ${describe(err)}`, true);
  } finally {
    $('p-send').disabled = false;
  }
});
$('p-data').addEventListener('input', () => $('p-data').removeAttribute('aria-invalid'));

// ---- the file watcher's roots (SPEC §9): GET/POST/DELETE /api/watches, refreshed on `watch.*` events ----
const watchErrors = new Map(); // root -> the last watch.error message

/** A `watch.*` event on `files`: remember or forget its root's error, and list the roots again. */
export function onWatchEvent(e) {
  if (e.event === 'watch.error' && e.data?.root) watchErrors.set(e.data.root, e.data.message ?? 'error');
  else if (e.data?.root) watchErrors.delete(e.data.root);
  loadWatches();
}
export async function loadWatches() {
  try {
    const { watches } = await api('/api/watches');
    $('watches').replaceChildren(
      ...watches.map(({ root, error }) => {
        const remove = el('button', { type: 'button', textContent: 'Remove', ariaLabel: `Stop watching ${root}` });
        remove.addEventListener('click', async () => {
          remove.disabled = true;
          try {
            await api(`/api/watches?path=${encodeURIComponent(root)}`, { method: 'DELETE' });
            say($('w-status'), `Stopped watching ${root}`);
            await loadWatches();
          } catch (err) {
            say($('w-status'), `Not removed: ${describe(err)}`, true);
            remove.disabled = false;
          }
        });
        const problem = watchErrors.get(root) ?? error;
        return el('li', { dataset: { root } },
          el('span', {}, el('code', { textContent: root }), ...(problem ? [' ', el('span', { className: 'error', textContent: problem })] : [])),
          remove);
      }),
    );
    $('watches-empty').hidden = watches.length > 0;
  } catch (err) {
    say($('w-status'), `Could not list watched folders: ${describe(err)}`, true);
  }
}
$('watch-add').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const path = $('w-path').value.trim();
  if (!path) return say($('w-status'), 'Type the folder to watch', true);
  $('w-add').disabled = true;
  try {
    const { root } = await api('/api/watches', { method: 'POST', body: JSON.stringify({ path }) });
    say($('w-status'), `Watching ${root}`);
    $('w-path').value = '';
    await loadWatches();
  } catch (err) {
    say($('w-status'), `Not added: ${describe(err)}`, true);
  } finally {
    $('w-add').disabled = false;
  }
});
