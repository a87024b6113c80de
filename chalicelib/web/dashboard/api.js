// The public API, as the dashboard calls it: one fetch wrapper, the session, errors in words.
//
// The session (a bearer token) lives in this origin's localStorage. Share pages are served
// under /s/<slug>/ with a CSP sandbox and no allow-same-origin: they run in an opaque origin
// and cannot read this storage (see docs/security.md). The token only ever travels in an
// Authorization header, never in a URL or a cookie.

const SESSION_KEY = 'spikes.dashboard.session';
export const PENDING_KEY = 'spikes.dashboard.pending-login';

// The API's base: the dashboard is served at <base>/dashboard (a stage prefix included).
export const apiBase = location.origin + location.pathname.replace(/\/dashboard\/?$/, '');

export function readSession() {
  try {
    const value = JSON.parse(localStorage.getItem(SESSION_KEY) || 'null');
    return value && typeof value.token === 'string' ? value : null;
  } catch (_) {
    return null;
  }
}

export function saveSession(token, email) {
  localStorage.setItem(SESSION_KEY, JSON.stringify({ token, email }));
  localStorage.removeItem(PENDING_KEY);
}

export function clearSession() {
  localStorage.removeItem(SESSION_KEY);
}

export function onSessionChange(callback) {
  // Another tab (the mail link's confirmation page) signed in or out.
  window.addEventListener('storage', (event) => {
    if (event.key === SESSION_KEY || event.key === null) callback(readSession());
  });
}

export class ApiError extends Error {
  constructor(status, body, headers) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
    this.code = this.body.code || (status === 0 ? 'NETWORK' : 'HTTP_' + status);
    this.retryAfter = headers ? Number(headers.get('Retry-After')) || null : null;
    this.requestId = this.body.request_id || (headers ? headers.get('X-Request-Id') : null);
  }
}

// Session ended elsewhere (revoked, rotated, expired): the app listens and shows sign-in.
let onUnauthorized = () => {};
export function setUnauthorizedHandler(handler) { onUnauthorized = handler; }

export function url(path, query) {
  const target = new URL(apiBase + path);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== '') target.searchParams.set(key, value);
  }
  return target.toString();
}

function headersFor(extra) {
  const session = readSession();
  const headers = { Accept: 'application/json', ...(extra || {}) };
  if (session) headers.Authorization = 'Bearer ' + session.token;
  return headers;
}

async function send(method, path, { body, query, headers } = {}) {
  const init = { method, headers: headersFor(headers), credentials: 'omit', cache: 'no-store' };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  try {
    return await fetch(url(path, query), init);
  } catch (_) {
    throw new ApiError(0, { error: 'Could not reach the server. Check your connection and try again.' });
  }
}

async function failure(response) {
  let body = null;
  try { body = await response.json(); } catch (_) { /* not JSON: a proxy or gateway page */ }
  const error = new ApiError(response.status, body || { error: `The server answered ${response.status} ${response.statusText}`.trim() },
    response.headers);
  if (response.status === 401 && readSession()) onUnauthorized(error);
  return error;
}

export async function api(method, path, options) {
  const response = await send(method, path, options);
  if (!response.ok) throw await failure(response);
  if (response.status === 204) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

// A page of a listing answered as a bare array: its items and the next page's cursor
// (the X-Next-Cursor header, null on the last page).
export async function apiPage(path, query) {
  const response = await send('GET', path, { query });
  if (!response.ok) throw await failure(response);
  return { items: await response.json(), next: response.headers.get('X-Next-Cursor') };
}

// Returns the status too, for the polls that answer 202 while pending.
export async function apiWithStatus(method, path, options) {
  const response = await send(method, path, options);
  if (!response.ok) throw await failure(response);
  return { status: response.status, body: await response.json() };
}

// A file the API sends as an attachment (exports): fetched with the token, saved by the browser.
export async function download(path, query, fallbackName) {
  const response = await send('GET', path, { query, headers: { Accept: '*/*' } });
  if (!response.ok) throw await failure(response);
  const blob = await response.blob();
  const disposition = response.headers.get('Content-Disposition') || '';
  const match = /filename="([^"]+)"/.exec(disposition);
  const link = document.createElement('a');
  link.href = URL.createObjectURL(blob);
  link.download = match ? match[1] : fallbackName;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 30000);
  return link.download;
}

// Every API error in words: the server's message, field details, when to retry, the request id.
export function describe(error) {
  if (!(error instanceof ApiError)) return 'Something went wrong in the dashboard: ' + (error && error.message || error);
  const parts = [error.body.error || error.message];
  for (const detail of error.body.details || []) {
    parts.push(`${detail.field ? detail.field + ': ' : ''}${detail.message}`);
  }
  const retry = error.body.retry_after || error.retryAfter;
  if (retry) parts.push(`Try again in ${retry} s.`);
  if (error.status >= 500) parts.push('This is a problem on the server, not something you did.');
  if (error.requestId) parts.push(`(request ${error.requestId})`);
  return parts.join(' — ');
}
