// A share's outbound webhook (Pro): its signing secret (shown once), a test event, secret
// rotation, resuming after a pause, and the recent deliveries.

import { api, describe } from './api.js';
import { busy, h, replace, status, when } from './dom.js';

export function secretOnce(secret, note) {
  const value = h('input', { id: 'webhook-secret', readonly: true, value: secret, 'aria-label': 'Webhook signing secret' });
  const copied = h('span', { role: 'status' });
  return h('div', { class: 'once' },
    h('p', {}, h('strong', {}, 'Copy the signing secret now.'), ` ${note} It is not shown again.`), value,
    h('button', { type: 'button', class: 'secondary', onclick: async () => {
      value.select();
      try { await navigator.clipboard.writeText(secret); copied.textContent = 'Copied.'; }
      catch (_) { copied.textContent = 'Select the secret and copy it with your keyboard.'; }
    } }, 'Copy'), copied);
}

function deliveryRows(items) {
  if (!items.length) return h('p', { class: 'empty' }, 'No deliveries yet.');
  return h('div', { class: 'table-wrap' }, h('table', { class: 'deliveries' },
    h('thead', {}, h('tr', {}, ['Event', 'Status', 'Attempts', 'Answer', 'When'].map((label) => h('th', { scope: 'col' }, label)))),
    h('tbody', {}, items.map((item) => h('tr', { 'data-delivery': item.id },
      h('td', {}, item.event_type),
      h('td', {}, h('span', { class: 'badge ' + (item.status === 'delivered' ? 'ok' : item.status === 'failed' ? 'warn' : '') }, item.status)),
      h('td', { class: 'num' }, String(item.attempts)),
      h('td', {}, [item.last_status_code ? `HTTP ${item.last_status_code}` : null, item.last_error].filter(Boolean).join(' — ') || '—'),
      h('td', {}, when(item.delivered_at || item.last_attempt_at || item.created_at),
        item.next_attempt_at ? ` (next try ${when(item.next_attempt_at)})` : ''))))));
}

export function webhookPanel(share, freshSecret) {
  const messages = h('div');
  const state = h('div');
  const log = h('div', { id: 'deliveries' }, status('', 'Loading deliveries…'));
  const once = h('div', { 'aria-live': 'polite' }, freshSecret ? secretOnce(freshSecret, 'Receivers use it to check the X-Spikes-Signature header.') : null);
  const path = `/shares/${encodeURIComponent(share.id)}/webhook`;

  async function refresh() {
    try {
      const [current, deliveries] = await Promise.all([api('GET', path), api('GET', path + '/deliveries', { query: { limit: 20 } })]);
      replace(state, h('p', {}, 'Events: ', current.events.join(', '), '. ',
        current.paused ? h('strong', { class: 'err' }, `Paused ${when(current.paused_at)}: ${current.pause_reason || 'the endpoint kept failing'}.`) : 'Active.',
        current.previous_secret_valid_until ? ` The previous secret still signs until ${when(current.previous_secret_valid_until)}.` : ''),
      current.paused ? h('button', { type: 'button', id: 'webhook-resume', onclick: (event) => busy(event.target, messages, async () => {
        const answer = await api('POST', path + '/resume');
        messages.replaceChildren(status('ok', `Resumed; ${answer.queued} held event${answer.queued === 1 ? '' : 's'} queued.`));
        await refresh();
      }) }, 'Resume deliveries') : null);
      replace(log, deliveryRows(deliveries.data));
    } catch (error) {
      replace(log, status('err', describe(error)));
    }
  }

  const panel = h('section', { class: 'card', 'aria-labelledby': 'webhook-heading', id: 'webhook-panel' },
    h('h2', { id: 'webhook-heading' }, 'Webhook deliveries'),
    h('p', {}, 'To ', h('code', {}, share.webhook_url)),
    once, state,
    h('div', { class: 'row' },
      h('button', { type: 'button', class: 'secondary', id: 'webhook-test', onclick: (event) => busy(event.target, messages, async () => {
        const answer = await api('POST', path + '/test');
        const d = answer.delivery;
        messages.replaceChildren(status(answer.ok ? 'ok' : 'err', answer.ok
          ? `Test event delivered (HTTP ${d.last_status_code}).`
          : `Test event not delivered: ${[d.last_status_code ? 'HTTP ' + d.last_status_code : null, d.last_error].filter(Boolean).join(' — ') || d.status}.`));
        await refresh();
      }) }, 'Send a test event'),
      h('button', { type: 'button', class: 'secondary', id: 'webhook-rotate', onclick: (event) => busy(event.target, messages, async () => {
        if (!window.confirm('Make a new signing secret? The old one keeps working for a grace period.')) return;
        const answer = await api('POST', path + '/rotate');
        replace(once, secretOnce(answer.webhook_secret, `The old secret stays valid until ${when(answer.previous_secret_valid_until)}.`));
        await refresh();
      }) }, 'Rotate the secret'),
      h('button', { type: 'button', class: 'secondary', onclick: (event) => busy(event.target, messages, refresh) }, 'Refresh')),
    messages, log);
  refresh();
  return panel;
}
