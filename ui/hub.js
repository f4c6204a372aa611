// The window's line to the hub: where it is (`?hub=`, else the page's origin), the token (`?token=`), and `api()`,
// which keeps the hub's error code and status on what it throws.
export const params = new URLSearchParams(location.search);
export const token = params.get('token') || '';
export const base = params.get('hub') || location.origin;
export const wsBase = base.replace(/^http/, 'ws');

export async function api(path, init = {}) {
  const headers = { ...(init.headers || {}) };
  if (token) headers.authorization = `Bearer ${token}`;
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(base + path, { ...init, headers });
  const text = await res.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    if (res.ok) throw new Error(`${path}: the hub answered ${res.status} with something that is not JSON`);
  }
  if (!res.ok) {
    // The hub's error shape, {"error":{"code","message"}}: keep the code so the window can show it.
    const err = new Error(body?.error?.message || `${res.status} ${res.statusText}`);
    err.code = body?.error?.code || String(res.status);
    err.status = res.status;
    throw err;
  }
  return body;
}
export const describe = (err) => (err.code ? `${err.code}: ${err.message}` : err.message);
