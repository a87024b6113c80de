// The dashboard's shell: sign-in, navigation between views, signing out.

import {
  api, apiWithStatus, clearSession, describe, onSessionChange, PENDING_KEY, readSession, saveSession,
  setUnauthorizedHandler,
} from './api.js';
import { h, replace, status } from './dom.js';
import { renderShares } from './shares.js';
import { renderShare } from './share.js';
import { renderAccount, renderKeys } from './account.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const POLL_EVERY_MS = 3000;
let pollTimer = null;
let notice = null; // a message carried into the next render (e.g. "signed out")

function stopPolling() {
  if (pollTimer) clearTimeout(pollTimer);
  pollTimer = null;
}

// --- signing in ------------------------------------------------------------------------------

function renderSignIn(message) {
  stopPolling();
  nav.hidden = true;
  const pending = readPending();
  const messages = h('div', { id: 'signin-msg' });
  if (message) messages.append(message);
  const email = h('input', { id: 'email', type: 'email', name: 'email', autocomplete: 'email', required: true,
    value: (pending && pending.email) || '' });
  const button = h('button', { type: 'submit' }, 'Send me a sign-in link');
  const form = h('form', { class: 'card narrow', onsubmit: (event) => { event.preventDefault(); requestLink(email.value, button, messages); } },
    h('h1', { tabindex: '-1' }, 'Sign in to Spikes'),
    h('p', {}, 'Enter your e-mail address. We send you a link; open it and confirm, and this page signs you in.'),
    h('label', { for: 'email' }, 'E-mail'), email, button, messages);
  replace(main, form);
  focusHeading();
}

function readPending() {
  try { return JSON.parse(localStorage.getItem(PENDING_KEY) || 'null'); } catch (_) { return null; }
}

async function requestLink(email, button, messages) {
  button.disabled = true;
  messages.replaceChildren(status('', 'Sending…'));
  try {
    const answer = await api('POST', '/auth/login', { body: { email } });
    // The code lets the mail's confirmation page (same origin) recognise this request as ours.
    localStorage.setItem(PENDING_KEY, JSON.stringify({ email: email.trim().toLowerCase(), code: answer.code, at: Date.now() }));
    renderCheckMail(email, answer);
  } catch (error) {
    messages.replaceChildren(status('err', describe(error)));
    button.disabled = false;
  }
}

function renderCheckMail(email, answer) {
  const progress = h('p', { class: 'msg', role: 'status' }, 'Waiting for you to confirm in the e-mail…');
  const code = answer.code;
  replace(main, h('section', { class: 'card narrow' },
    h('h1', { tabindex: '-1' }, 'Check your e-mail'),
    h('p', {}, 'We sent a sign-in link to ', h('strong', {}, email), '. Open it and confirm; this page continues by itself.'),
    code ? h('p', {}, 'The e-mail and its page show this code: ', h('strong', { class: 'code', id: 'login-code' }, code),
      '. Only sign in if it matches.') : null,
    h('p', {}, 'Opened the link in another browser or on your phone? Approve it there; this page still signs you in.'),
    progress,
    h('button', { type: 'button', class: 'secondary', onclick: () => { localStorage.removeItem(PENDING_KEY); renderSignIn(); } },
      'Use another address')));
  focusHeading();
  poll(answer.poll_token, progress);
}

function poll(pollToken, progress) {
  stopPolling();
  const tick = async () => {
    try {
      const { status: code, body } = await apiWithStatus('GET', '/auth/poll', { query: { poll_token: pollToken } });
      if (readSession()) return; // the confirmation tab already signed this browser in
      if (code === 200 && body.token) {
        saveSession(body.token, body.user && body.user.email);
        start();
        return;
      }
      pollTimer = setTimeout(tick, POLL_EVERY_MS);
    } catch (error) {
      if (readSession()) return;
      if (error.code === 'RATE_LIMIT' || error.status >= 500 || error.status === 0) {
        progress.replaceChildren(`Still waiting (${describe(error)})`);
        pollTimer = setTimeout(tick, Math.max(POLL_EVERY_MS, (error.retryAfter || 0) * 1000));
        return;
      }
      localStorage.removeItem(PENDING_KEY);
      renderSignIn(status('err', describe(error) + ' Request a new link.'));
    }
  };
  pollTimer = setTimeout(tick, POLL_EVERY_MS);
}

// --- signed in -------------------------------------------------------------------------------

// Revokes the session on the server (every session of the account with ``everywhere``), then
// forgets it here. A session the server no longer knows (401) is signed out already.
export async function signOut(everywhere = false) {
  const session = readSession();
  let message = status('ok', everywhere ? 'You are signed out everywhere.' : 'You are signed out.');
  if (session) {
    try {
      await api('POST', '/auth/logout', { body: { everywhere } });
    } catch (error) {
      if (error.status !== 401) message = status('err', 'Signed out of this browser, but the server did not revoke the session: ' + describe(error));
    }
  }
  clearSession();
  notice = null;
  renderSignIn(message);
}

function focusHeading() {
  const heading = main.querySelector('h1');
  if (heading) heading.focus({ preventScroll: false });
}

function markCurrent(view) {
  for (const link of nav.querySelectorAll('a[data-view]')) {
    if (link.dataset.view === view) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

// An internationalised domain in its ASCII form too, as the address bar shows such a host: a
// look-alike in another script (аррӏе.com for apple.com) is told apart (docs/security.md, 181).
function shownAddress(email) {
  const at = email.lastIndexOf('@');
  const domain = email.slice(at + 1);
  let ascii;
  try { ascii = new URL(`http://${domain}/`).hostname; } catch (error) { return email; }
  return at < 0 || ascii === domain ? email : `${email} (${email.slice(0, at + 1)}${ascii})`;
}

async function route() {
  const session = readSession();
  if (!session) { renderSignIn(); return; }
  stopPolling();
  nav.hidden = false;
  document.getElementById('who').textContent = shownAddress(session.email || '');
  const hash = location.hash.replace(/^#\/?/, '');
  const [view, ...rest] = hash.split('/');
  const carried = notice;
  notice = null;
  replace(main, h('p', { class: 'msg', role: 'status' }, 'Loading…'));
  try {
    if (view === 'shares' && rest[0]) { markCurrent('shares'); await renderShare(main, decodeURIComponent(rest[0]), navigate); }
    else if (view === 'keys') { markCurrent('keys'); await renderKeys(main); }
    else if (view === 'account') { markCurrent('account'); await renderAccount(main); }
    else { markCurrent('shares'); await renderShares(main, navigate); }
  } catch (error) {
    if (!readSession()) return; // the 401 handler already showed sign-in
    replace(main, h('section', { class: 'card' }, h('h1', { tabindex: '-1' }, 'Could not load this page'),
      status('err', describe(error)), h('p', {}, h('a', { href: '#/' }, 'Back to your shares'))));
  }
  if (carried) main.prepend(carried);
  focusHeading();
}

function navigate(hash, message) {
  notice = message || null;
  if (location.hash === hash) route(); else location.hash = hash;
}

function start() {
  const params = new URLSearchParams(location.search);
  if (params.get('billing') === 'success') notice = status('ok', 'Thanks! Your subscription is being activated; your plan updates within a minute.');
  if (params.get('billing') === 'cancel') notice = status('', 'Checkout was cancelled; nothing was charged.');
  if (params.has('billing')) history.replaceState(null, '', location.pathname + location.hash);
  route();
}

document.getElementById('signout').addEventListener('click', () => signOut(false));
document.addEventListener('spikes:signout-everywhere', () => signOut(true));
window.addEventListener('hashchange', route);
setUnauthorizedHandler((error) => {
  clearSession();
  renderSignIn(status('err', 'Your session has ended (' + describe(error) + '). Sign in again.'));
});
onSessionChange((session) => {
  if (session) start();
  else renderSignIn(status('', 'You were signed out in another tab.'));
});
start();
