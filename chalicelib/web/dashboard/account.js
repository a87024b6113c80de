// Your account (plan, usage against limits, billing) and your API keys.

import { api, apiPage, describe } from './api.js';
import { busy, h, replace, status, when } from './dom.js';

function meter(id, label, used, limit, format = String, unlimited = 'no limit') {
  const text = limit === null || limit === undefined ? `${format(used)} (${unlimited})` : `${format(used)} of ${format(limit)}`;
  return h('div', { class: 'meter' },
    h('label', { for: id }, `${label}: ${text}`),
    limit ? h('meter', { id, min: '0', max: String(limit), value: String(Math.min(used, limit)), low: String(limit * 0.7),
      high: String(limit * 0.9), optimum: '0' }, text) : null);
}

const TIER_NAMES = { free: 'Free', pro: 'Pro', agent: 'Agent (pay per use)' };

function cents(amount) {
  return `${amount} ${Number(amount) === 1 ? 'cent' : 'cents'}`;
}

// The agent tier has no limits: it pays per spike and per share, within its monthly cap (GET /usage).
function agentCosts(usage) {
  return [
    meter('use-cost', 'Spent this period', usage.cost_this_period_cents, usage.monthly_cap_cents, cents, 'no monthly cap'),
    h('p', { id: 'agent-prices' }, `Billed by use: ${cents(usage.price_per_spike_cents)} per spike stored, `,
      `${cents(usage.price_per_share_cents)} per share created. Stripe invoices each calendar month (UTC).`)];
}

export async function renderAccount(main) {
  const [me, usage] = await Promise.all([api('GET', '/me'), api('GET', '/usage')]);
  const messages = h('div');
  const tier = usage.tier || me.tier;
  const goTo = (path) => (event) => busy(event.target, messages, async () => {
    const answer = await api('POST', path);
    if (answer.url) { window.location.assign(answer.url); return; }
    messages.replaceChildren(status('', answer.message || 'Nothing to do.'));
  });
  replace(main,
    h('h1', { tabindex: '-1' }, 'Account'),
    h('section', { class: 'card' },
      h('dl', { class: 'facts' },
        h('dt', {}, 'E-mail'), h('dd', { id: 'account-email' }, me.email || '—'),
        h('dt', {}, 'Plan'), h('dd', { id: 'account-tier' }, TIER_NAMES[tier] || tier),
        h('dt', {}, 'Usage resets'), h('dd', {}, when(usage.reset_at))),
      meter('use-spikes', 'Spikes this period', usage.spikes, usage.spike_limit),
      meter('use-shares', 'Active shares', usage.shares, usage.share_limit),
      tier === 'agent' ? agentCosts(usage) : null,
      // Only the free tier is offered Pro: a paying account (Pro, or the agent tier billed by use)
      // changes or ends its plan in Stripe's portal.
      h('div', { class: 'row' },
        tier === 'free' ? h('button', { type: 'button', id: 'upgrade', onclick: goTo('/billing/checkout') }, 'Upgrade to Pro') : null,
        h('button', { type: 'button', class: tier === 'free' ? 'secondary' : '', id: 'billing-portal', onclick: goTo('/billing/portal') }, 'Manage billing')),
      messages),
    h('section', { class: 'card', 'aria-labelledby': 'sessions' },
      h('h2', { id: 'sessions' }, 'Sessions'),
      h('p', {}, 'Signed in on a computer you no longer use, or lost a CLI token? Sign out everywhere revokes every session of ',
        'this account (this one too). API keys stay; revoke them under API keys.'),
      h('button', { type: 'button', class: 'danger', id: 'signout-everywhere', onclick: () => {
        if (window.confirm('Sign out on every device and CLI?')) document.dispatchEvent(new Event('spikes:signout-everywhere'));
      } }, 'Sign out everywhere')));
}

// --- API keys --------------------------------------------------------------------------------

// The API's finer scopes (resource:action); when any is ticked, they replace the choice above.
const FINE_SCOPES = ['spikes:read', 'spikes:write', 'shares:read', 'shares:write', 'usage:read', 'keys:manage'];
const SCOPE_CHOICES = [
  ['full', 'Everything (full)'], ['read', 'Read shares, feedback and usage (read)'],
  ['write', 'Read and write shares and feedback (write)'],
];

export async function renderKeys(main) {
  const keys = await apiPage('/auth/api-keys');
  const messages = h('div');
  const created = h('div', { 'aria-live': 'polite' });
  const name = h('input', { id: 'key-name', maxlength: '100', placeholder: 'e.g. CI agent' });
  const scope = h('select', { id: 'key-scope' }, SCOPE_CHOICES.map(([value, label]) => h('option', { value }, label)));
  const expires = h('input', { id: 'key-expires', type: 'date' });
  const fine = FINE_SCOPES.map((scope) => h('label', { class: 'check' }, h('input', { type: 'checkbox', value: scope, name: 'fine-scope' }), ' ', h('code', {}, scope)));
  const form = h('form', { class: 'card', onsubmit: (event) => {
    event.preventDefault();
    busy(event.submitter, messages, async () => {
      const picked = fine.map((label) => label.querySelector('input')).filter((box) => box.checked).map((box) => box.value);
      const body = { name: name.value.trim() || undefined, scopes: picked.length ? picked.join(' ') : scope.value };
      if (expires.value) body.expires_at = new Date(expires.value + 'T23:59:59Z').toISOString();
      const key = await api('POST', '/auth/api-key', { body });
      showOnce(created, key);
      table.replaceWith(table = keyTable(await apiPage('/auth/api-keys'), messages));
    });
  } },
  h('h2', {}, 'Create a key'),
  h('p', {}, 'Keys let agents and scripts use the API as you, limited to the scope you choose. A key is shown once.'),
  h('label', { for: 'key-name' }, 'Name'), name,
  h('label', { for: 'key-scope' }, 'Scope'), scope,
  h('details', {}, h('summary', {}, 'Finer scopes'), h('div', { class: 'fine-scopes', role: 'group', 'aria-label': 'Finer scopes' }, fine)),
  h('label', { for: 'key-expires' }, 'Expires (optional)'), expires,
  h('button', { type: 'submit' }, 'Create key'), created);
  let table = keyTable(keys, messages);
  replace(main, h('h1', { tabindex: '-1' }, 'API keys'), form,
    h('section', { class: 'card', 'aria-labelledby': 'your-keys' }, h('h2', { id: 'your-keys' }, 'Your keys'), messages, table));
}

function showOnce(area, key) {
  const value = h('input', { id: 'new-key', readonly: true, value: key.api_key, 'aria-label': 'Your new API key' });
  const copied = h('span', { role: 'status' });
  replace(area, h('div', { class: 'once' },
    h('p', {}, h('strong', {}, 'Copy your key now.'), ' It is not shown again; only its prefix is kept.'),
    value,
    h('button', { type: 'button', id: 'copy-key', onclick: async () => {
      value.select();
      try { await navigator.clipboard.writeText(key.api_key); copied.textContent = 'Copied.'; }
      catch (_) { copied.textContent = document.execCommand && document.execCommand('copy') ? 'Copied.' : 'Select the key and copy it with your keyboard.'; }
    } }, 'Copy'), copied));
  value.focus();
  value.select();
}

// Keys are listed by their prefix, as they start: sk_spikes_<prefix>…
function displayPrefix(prefix) {
  return String(prefix || '').startsWith('sk_spikes_') ? prefix : 'sk_spikes_' + (prefix || '');
}

// The newest keys, a page at a time: "Show older keys" follows the listing's cursor.
function keyTable(page, messages) {
  if (!page.items.length) return h('p', { class: 'empty' }, 'No keys yet.');
  const body = h('tbody', {}, page.items.map((key) => keyRow(key, messages)));
  const table = h('div', { class: 'table-wrap' }, h('table', { class: 'keys' },
    h('thead', {}, h('tr', {}, ['Name', 'Key', 'Scope', 'Created', 'Last used', 'Expires', ''].map((label) => h('th', { scope: 'col' }, label)))),
    body));
  let next = page.next;
  const more = h('button', { type: 'button', id: 'older-keys', onclick: (event) => busy(event.target, messages, async () => {
    const older = await apiPage('/auth/api-keys', { cursor: next });
    older.items.forEach((key) => body.appendChild(keyRow(key, messages)));
    next = older.next;
    if (!next) more.remove();
  }) }, 'Show older keys');
  return next ? h('div', {}, table, more) : table;
}

function keyRow(key, messages) {
  return h('tr', { 'data-key': key.key_id, class: key.revoked_at ? 'revoked' : '' },
    h('th', { scope: 'row' }, key.name || '—'),
    h('td', {}, h('code', {}, displayPrefix(key.key_prefix) + '…')),
    h('td', {}, key.scopes || 'full'),
    h('td', {}, when(key.created_at)),
    h('td', {}, key.last_used_at ? when(key.last_used_at) : 'Never'),
    h('td', {}, key.expires_at ? when(key.expires_at) : 'Never'),
    h('td', {}, key.revoked_at ? `Revoked ${when(key.revoked_at)}` : h('button', { type: 'button', class: 'danger',
      'aria-label': `Revoke key ${key.name || key.key_prefix}`,
      onclick: (event) => busy(event.target, messages, async () => {
        if (!window.confirm(`Revoke “${key.name || key.key_prefix}”? Anything using it stops working at once.`)) return;
        await api('DELETE', `/auth/api-key/${encodeURIComponent(key.key_id)}`);
        const row = event.target.closest('tr');
        row.classList.add('revoked');
        row.lastChild.replaceChildren('Revoked just now');
        messages.replaceChildren(status('ok', `Key ${key.name || key.key_prefix} revoked.`));
      }) }, 'Revoke')));
}
