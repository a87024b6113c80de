// One share: its feedback at a glance (charts), settings, the spikes with filters and paging,
// exports, and deletion.

import { api, describe, download } from './api.js';
import { bytes, busy, h, RATING_LABEL, RATINGS, replace, status, when } from './dom.js';
import { highlightFragment, hotspots, hotspotsChart, ratingsChart, timelineChart } from './charts.js';
import { statusBadge } from './shares.js';
import { webhookPanel } from './webhooks.js';

const PAGE_SIZE = 20;
// A background export is polled this often, for at most an hour (the API gives it 6).
const EXPORT_POLL_MS = 3000;
const EXPORT_POLLS = 1200;
// A webhook's signing secret comes once, in the answer that set the URL: kept here across the
// re-render that follows, then dropped.
const freshSecrets = new Map();

// A listing page as large as the API gives: reading every spike of a busy share takes few of them.
const LISTING_MAX = 1000;

export async function renderShare(main, key, navigate) {
  const { share, all } = await withFeedback(key);
  // Ids are unique per share, not per owner (anyone may post one again elsewhere): one spike is
  // always asked for in this share.
  const inShare = { project: share.id };
  const state = { filters: { page: '', rating: '', reviewer: '', resolved: '' }, cursors: [null], index: 0 };
  const charts = h('div', { class: 'charts' });
  const list = h('div', { id: 'spikes' });

  function drawCharts() {
    const spots = hotspots(all);
    replace(charts,
      h('figure', { class: 'card' }, h('figcaption', {}, 'Ratings'), ratingsChart(all)),
      h('figure', { class: 'card' }, h('figcaption', {}, 'Feedback over time'), timelineChart(all)),
      h('figure', { class: 'card' }, h('figcaption', {}, 'Hotspots'), hotspotsChart(spots),
        spots.length ? h('p', {}, h('a', { href: share.url + highlightFragment(spots), target: '_blank', rel: 'noopener noreferrer',
          id: 'open-hotspots' }, 'Open the share with the hotspots highlighted ↗')) : null));
  }

  async function loadPage() {
    const query = { project: share.id, limit: PAGE_SIZE, cursor: state.cursors[state.index], ...state.filters };
    replace(list, status('', 'Loading feedback…'));
    try {
      const page = await api('GET', '/spikes', { query });
      state.cursors[state.index + 1] = page.next_cursor;
      replace(list, spikeList(page.data), pager(page.next_cursor));
    } catch (error) {
      replace(list, status('err', describe(error)));
    }
  }

  function pager(next) {
    const label = `Page ${state.index + 1}`;
    return h('nav', { class: 'pager', 'aria-label': 'Feedback pages' },
      h('button', { type: 'button', class: 'secondary', disabled: state.index === 0,
        onclick: () => { state.index -= 1; loadPage(); } }, '← Newer'),
      h('span', {}, label),
      h('button', { type: 'button', class: 'secondary', disabled: !next,
        onclick: () => { state.index += 1; loadPage(); } }, 'Older →'));
  }

  function spikeList(spikes) {
    if (!spikes.length) return h('p', { class: 'empty' }, 'No feedback matches.');
    return h('ol', { class: 'spikes' }, spikes.map(spikeItem));
  }

  function spikeItem(spike) {
    const messages = h('div');
    const rating = RATINGS.includes(spike.rating) ? spike.rating : 'none';
    const resolve = h('button', { type: 'button', class: 'secondary', 'aria-pressed': String(spike.resolved) },
      spike.resolved ? 'Mark unresolved' : 'Mark resolved');
    const item = h('li', { class: 'spike' + (spike.resolved ? ' resolved' : ''), 'data-spike': spike.id },
      h('div', { class: 'spike-head' },
        h('span', { class: `rating r-${rating}` }, RATING_LABEL[rating]),
        h('span', { class: 'who' }, (spike.reviewer && spike.reviewer.name) || 'Anonymous'),
        h('time', { datetime: spike.timestamp }, when(spike.timestamp)),
        spike.resolved ? h('span', { class: 'badge ok' }, 'Resolved') : null),
      spike.comments ? h('p', { class: 'comment' }, spike.comments) : h('p', { class: 'comment muted' }, 'No comment'),
      h('dl', {},
        h('dt', {}, 'Page'), h('dd', {}, spike.page || '/'),
        spike.selector ? [h('dt', {}, 'Element'), h('dd', {}, h('code', {}, spike.selector))] : null,
        spike.elementText ? [h('dt', {}, 'Text'), h('dd', {}, spike.elementText)] : null),
      h('div', { class: 'row' }, resolve,
        h('button', { type: 'button', class: 'danger', onclick: (event) => busy(event.target, messages, async () => {
          if (!window.confirm('Delete this feedback for good?')) return;
          await api('DELETE', `/spikes/${encodeURIComponent(spike.id)}`, { query: inShare });
          const index = all.findIndex((other) => other.id === spike.id);
          if (index >= 0) all.splice(index, 1);
          drawCharts();
          await loadPage();
        }) }, 'Delete')),
      messages);
    resolve.addEventListener('click', () => busy(resolve, messages, async () => {
      const updated = await api('PATCH', `/spikes/${encodeURIComponent(spike.id)}`,
        { body: { resolved: !spike.resolved }, query: inShare });
      const stored = all.find((other) => other.id === spike.id);
      if (stored) stored.resolved = updated.resolved;
      item.replaceWith(spikeItem({ ...spike, resolved: updated.resolved }));
    }));
    return item;
  }

  function filters() {
    const options = (values) => [h('option', { value: '' }, 'Any'), ...values.map(([value, label]) => h('option', { value }, label))];
    const pages = [...new Set(all.map((spike) => spike.page || ''))].sort().map((page) => [page, page || '/']);
    const reviewers = [...new Map(all.map((spike) => [spike.reviewer && spike.reviewer.id,
      (spike.reviewer && spike.reviewer.name) || 'Anonymous'])).entries()].filter(([id]) => id);
    const select = (id, label, values) => [h('label', { for: id }, label),
      h('select', { id, name: id, onchange: (event) => { state.filters[id.slice(2)] = event.target.value; state.index = 0; state.cursors = [null]; loadPage(); } },
        options(values))];
    return h('form', { class: 'filters', onsubmit: (event) => event.preventDefault(), 'aria-label': 'Filter feedback' },
      h('div', {}, select('f-page', 'Page', pages)),
      h('div', {}, select('f-rating', 'Rating', [...RATINGS, ].map((r) => [r, RATING_LABEL[r]]))),
      h('div', {}, select('f-reviewer', 'Reviewer', reviewers)),
      h('div', {}, select('f-resolved', 'Status', [['false', 'Open'], ['true', 'Resolved']])));
  }

  function exportButtons(messages) {
    return ['csv', 'jsonl'].map((format) => h('button', { type: 'button', class: 'secondary', 'data-export': format,
      onclick: (event) => busy(event.target, messages, async () => {
        const query = { project: share.id, format };
        let name;
        try {
          name = await download('/spikes/export', query, `spikes-${share.slug}.${format}`);
        } catch (error) {
          if (error.code !== 'EXPORT_TOO_LARGE') throw error;
          name = await exportInBackground(query, messages);
        }
        messages.replaceChildren(status('ok', `Downloaded ${name}.`));
      }) }, `Export ${format.toUpperCase()}`));
  }

  const exportMessages = h('div');
  drawCharts();
  replace(main,
    h('p', { class: 'crumbs' }, h('a', { href: '#/' }, '← Your shares')),
    h('header', { class: 'share-head' },
      h('h1', { tabindex: '-1' }, share.name || share.slug),
      h('p', {}, h('a', { href: share.url, target: '_blank', rel: 'noopener noreferrer', id: 'share-link' }, share.url)),
      h('p', { class: 'meta' }, `${share.spike_count} spikes · ${share.file_count} files, ${bytes(share.total_bytes)} · created ${when(share.created_at)} · `,
        share.password_protected ? h('span', { class: 'badge' }, 'Password protected') : 'Public',
        statusBadge(share)),
      share.locked_reason ? status('err', share.locked_reason) : null),
    h('section', { 'aria-labelledby': 'glance' }, h('h2', { id: 'glance' }, 'At a glance'), charts),
    h('section', { 'aria-labelledby': 'feedback', class: 'card' },
      h('h2', { id: 'feedback' }, 'Feedback'),
      h('div', { class: 'row' }, exportButtons(exportMessages)), exportMessages,
      filters(), list),
    settings(share, navigate),
    share.webhook_url ? webhookPanel(share, takeSecret(share.id)) : null,
    dangerZone(share, navigate, exportButtons));
  await loadPage();
}

// The share and every spike of it (the charts need them all): the share without its feedback
// (its counted total, no spike read), then the feedback page by page. Asking for the feedback
// inline read up to one answer's worth (about 10,000 spikes) of a larger share only to be
// refused (409 EXPORT_TOO_LARGE), and then the pages read it all again.
async function withFeedback(key) {
  const share = await api('GET', `/shares/${encodeURIComponent(key)}`, { query: { exported_spikes: 'false' } });
  const all = [];
  let cursor = null;
  do {
    const page = await api('GET', '/spikes', { query: { project: share.id, limit: LISTING_MAX, cursor } });
    all.push(...page.data);
    cursor = page.next_cursor;
  } while (cursor);
  return { share, all };
}

function takeSecret(shareId) {
  const secret = freshSecrets.get(shareId);
  freshSecrets.delete(shareId);
  return secret;
}

function settings(share, navigate) {
  const messages = h('div');
  const name = h('input', { id: 's-name', value: share.name || '', maxlength: '255', required: true });
  const password = h('input', { id: 's-password', type: 'password', autocomplete: 'new-password', maxlength: '200' });
  const webhook = h('input', { id: 's-webhook', type: 'url', value: share.webhook_url || '', placeholder: 'https://example.com/hooks/spikes', maxlength: '2048' });
  const save = (body, done) => (event) => busy(event.target, messages, async () => {
    const updated = await api('PATCH', `/shares/${encodeURIComponent(share.id)}`, { body });
    if (updated.webhook_secret) freshSecrets.set(share.id, updated.webhook_secret);
    navigate(`#/shares/${encodeURIComponent(share.id)}`, status('ok', done(updated)));
  });
  return h('section', { class: 'card', 'aria-labelledby': 'settings' },
    h('h2', { id: 'settings' }, 'Settings'),
    h('form', { onsubmit: (event) => { event.preventDefault(); save({ name: name.value }, () => 'Name saved.')({ target: event.submitter }); } },
      h('label', { for: 's-name' }, 'Name'), name, h('button', { type: 'submit' }, 'Save name')),
    h('form', { onsubmit: (event) => { event.preventDefault(); save({ password: password.value }, () => (share.password_protected
      ? 'Password changed. Visitors need the new one from now on.' : 'Password set. Visitors need it from now on.'))({ target: event.submitter }); } },
      h('label', { for: 's-password' }, share.password_protected ? 'New password (Pro)' : 'Password (Pro)'), password,
      h('div', { class: 'row' }, h('button', { type: 'submit' }, share.password_protected ? 'Change password' : 'Set password'),
        share.password_protected ? h('button', { type: 'button', class: 'secondary',
          onclick: (event) => save({ password: null }, () => 'Password removed: the share is public.')(event) }, 'Remove password') : null)),
    h('form', { onsubmit: (event) => { event.preventDefault(); save({ webhook_url: webhook.value }, (u) => u.webhook_url ? 'Webhook URL saved.' : 'Webhook removed.')({ target: event.submitter }); } },
      h('label', { for: 's-webhook' }, 'Webhook URL (Pro)'), webhook,
      h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Save webhook'),
        share.webhook_url ? h('button', { type: 'button', class: 'secondary',
          onclick: (event) => save({ webhook_url: null }, () => 'Webhook removed.')(event) }, 'Remove webhook') : null)),
    messages);
}

function dangerZone(share, navigate, exportButtons) {
  const messages = h('div');
  const panel = h('div', { class: 'confirm', hidden: true, role: 'group', 'aria-labelledby': 'confirm-delete' },
    h('p', { id: 'confirm-delete' }, h('strong', {}, `Delete “${share.name || share.slug}”?`),
      ` Its page goes offline and its ${share.spike_count} spikes are deleted. Download them first if you want to keep them:`),
    h('div', { class: 'row' }, exportButtons(messages)),
    h('div', { class: 'row' },
      h('button', { type: 'button', class: 'danger', id: 'confirm-delete-button', onclick: (event) => busy(event.target, messages, async () => {
        // The feedback was offered for download above: not asked for again, so a share with more
        // of it than one answer carries can be deleted too (409 EXPORT_TOO_LARGE otherwise).
        await api('DELETE', `/shares/${encodeURIComponent(share.id)}`, { query: { exported_spikes: 'false' } });
        navigate('#/', status('ok', `Deleted “${share.name || share.slug}” and its ${share.spike_count} spikes.`));
      }) }, 'Delete for good'),
      h('button', { type: 'button', class: 'secondary', onclick: () => { panel.hidden = true; opener.hidden = false; opener.focus(); } }, 'Cancel')),
    messages);
  const opener = h('button', { type: 'button', class: 'danger', onclick: () => {
    panel.hidden = false; opener.hidden = true; panel.querySelector('button').focus();
  } }, 'Delete this share…');
  return h('section', { class: 'card danger-zone', 'aria-labelledby': 'danger' }, h('h2', { id: 'danger' }, 'Delete'), opener, panel);
}

// An export more than one request can read (409 EXPORT_TOO_LARGE) runs in the background: started
// with POST /exports, polled until done, then saved from its short-lived link (S3 names the file).
async function exportInBackground(query, messages) {
  let shown = await api('POST', '/exports', { query });
  for (let polls = 0; shown.status === 'running' && polls < EXPORT_POLLS; polls += 1) {
    messages.replaceChildren(status('', `Exporting in the background: ${shown.spike_count} spikes so far…`));
    await new Promise((resolve) => setTimeout(resolve, EXPORT_POLL_MS));
    shown = await api('GET', `/exports/${encodeURIComponent(shown.id)}`);
  }
  if (shown.status !== 'done') throw new Error(shown.error || 'the export is still running; try again later');
  const link = document.createElement('a');
  link.href = shown.download_url;
  document.body.appendChild(link);
  link.click();
  link.remove();
  return shown.filename;
}
