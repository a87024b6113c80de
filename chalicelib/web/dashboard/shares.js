// Your shares: the list, and creating one by dropping a folder or files.

import { api, apiPage, describe } from './api.js';
import { busy, bytes, h, replace, status, when } from './dom.js';
import { filesFromDrop, filesFromInput, normalise, uploadShare } from './upload.js';

// Shares listed at a time: a Pro account has no share limit (docs/security.md 305).
const SHARES_PAGE = 100;

export async function renderShares(main, navigate) {
  const page = await apiPage('/shares', { limit: SHARES_PAGE });
  replace(main,
    h('h1', { tabindex: '-1' }, 'Your shares'),
    uploader(navigate),
    page.items.length || page.next ? shareTable(page)
      : h('p', { class: 'empty' }, 'No shares yet. Drop a folder above to create one.'));
}

// Anything but a live share says so: an unfinished upload (and when the server deletes it), or
// a share locked (e.g. a password share after Pro ended; the reason is the server's).
export function statusBadge(share) {
  if (!share.status || share.status === 'active') return null;
  const label = share.status === 'pending' ? 'upload unfinished' : share.status;
  const title = share.locked_reason
    || (share.complete_before ? `Deleted if not completed by ${when(share.complete_before)}` : null);
  return h('span', { class: 'badge warn', title }, label);
}

// The newest shares, a page at a time: "Show older shares" follows the listing's cursor.
function shareTable(page) {
  const body = h('tbody', {}, page.items.map(shareRow));
  const messages = h('div', { class: 'msg' });
  const table = h('div', { class: 'table-wrap' }, h('table', { class: 'shares' },
    h('caption', { class: 'sr-only' }, 'Your shares, newest first'),
    h('thead', {}, h('tr', {}, ['Name', 'Link', 'Spikes', 'Created', 'Access'].map((label) => h('th', { scope: 'col' }, label)))),
    body));
  let next = page.next;
  const more = h('button', { type: 'button', id: 'older-shares', onclick: (event) => busy(event.target, messages, async () => {
    const older = await apiPage('/shares', { limit: SHARES_PAGE, cursor: next });
    older.items.forEach((share) => body.appendChild(shareRow(share)));
    next = older.next;
    if (!next) more.remove();
  }) }, 'Show older shares');
  return next ? h('div', {}, table, more, messages) : table;
}

function shareRow(share) {
  return h('tr', { 'data-share': share.id },
    h('th', { scope: 'row' }, h('a', { href: `#/shares/${encodeURIComponent(share.id)}` }, share.name || share.slug),
      statusBadge(share)),
    h('td', {}, h('a', { href: share.url, target: '_blank', rel: 'noopener noreferrer' }, `/s/${share.slug}`)),
    h('td', { class: 'num' }, String(share.spike_count)),
    h('td', {}, when(share.created_at)),
    h('td', {}, share.password_protected ? h('span', { class: 'badge' }, 'Password') : 'Public'));
}

function uploader(navigate) {
  const messages = h('div', { class: 'upload-msg' });
  const progress = h('progress', { max: '100', value: '0', hidden: true, 'aria-label': 'Upload progress' });
  const progressText = h('p', { class: 'msg', role: 'status', 'aria-live': 'polite' });
  const name = h('input', { id: 'share-name', name: 'name', placeholder: 'Taken from the folder when empty', maxlength: '255' });
  const pickFiles = h('input', { type: 'file', id: 'pick-files', multiple: true, class: 'sr-only' });
  const pickFolder = h('input', { type: 'file', id: 'pick-folder', webkitdirectory: true, class: 'sr-only' });
  let running = false;

  async function start(items) {
    if (running) return;
    const { folder, items: files } = normalise(items);
    if (!files.length) { messages.replaceChildren(status('err', 'Nothing to upload: the selection has no files.')); return; }
    if (!files.some((item) => /(^|\/)index\.html?$/i.test(item.path))) {
      messages.replaceChildren(status('', 'Note: there is no index.html; the share opens at its first page only if you link to it.'));
    } else {
      messages.replaceChildren();
    }
    running = true;
    zone.setAttribute('aria-busy', 'true');
    progress.hidden = false;
    const shareName = name.value.trim() || folder || files[0].path.replace(/\.[^.]*$/, '');
    try {
      const share = await uploadShare(shareName, files, (sent, total, phase) => {
        const percent = total ? Math.floor((sent / total) * 100) : 100;
        progress.value = percent;
        progressText.textContent = phase === 'announcing' ? 'Preparing the upload…'
          : phase === 'completing' ? 'Checking the files…'
          : `Uploading ${files.length} file${files.length === 1 ? '' : 's'}: ${bytes(sent)} of ${bytes(total)} (${percent}%)`;
      });
      progressText.textContent = 'Uploaded.';
      navigate(`#/shares/${encodeURIComponent(share.share_id)}`, status('ok', `Share “${shareName}” is live at ${share.url}`));
    } catch (error) {
      progress.hidden = true;
      progressText.textContent = '';
      const text = describe(error);
      const pending = error.pendingShare;
      messages.replaceChildren(status('err', 'Upload failed: ' + text),
        pending ? h('p', {}, 'The unfinished share still counts against your limit. ',
          h('button', { type: 'button', class: 'secondary', onclick: async (event) => {
            event.target.disabled = true;
            try { await api('DELETE', `/shares/${encodeURIComponent(pending.share_id)}`); messages.replaceChildren(status('ok', 'The unfinished share was removed.')); }
            catch (err) { messages.append(status('err', describe(err))); event.target.disabled = false; }
          } }, 'Remove the unfinished share')) : null);
    } finally {
      running = false;
      zone.removeAttribute('aria-busy');
    }
  }

  pickFiles.addEventListener('change', () => { if (pickFiles.files.length) start(filesFromInput(pickFiles)); });
  pickFolder.addEventListener('change', () => { if (pickFolder.files.length) start(filesFromInput(pickFolder)); });

  const zone = h('section', { class: 'card dropzone', id: 'dropzone', 'aria-labelledby': 'new-share' },
    h('h2', { id: 'new-share' }, 'New share'),
    h('p', {}, 'Drop a folder or files here (a mockup with its index.html), or choose them. Any size the server allows.'),
    h('label', { for: 'share-name' }, 'Name'), name,
    h('div', { class: 'row' },
      h('label', { for: 'pick-folder', class: 'button', tabindex: '0', role: 'button',
        onkeydown: (event) => { if (event.key === 'Enter' || event.key === ' ') { event.preventDefault(); pickFolder.click(); } } },
      'Choose a folder'), pickFolder,
      h('label', { for: 'pick-files', class: 'button secondary', tabindex: '0', role: 'button',
        onkeydown: (event) => { if (event.key === 'Enter' || event.key === ' ') { event.preventDefault(); pickFiles.click(); } } },
      'Choose files'), pickFiles),
    progress, progressText, messages);
  zone.addEventListener('dragover', (event) => { event.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', async (event) => {
    event.preventDefault();
    zone.classList.remove('over');
    try {
      start(await filesFromDrop(event.dataTransfer));
    } catch (error) {
      messages.replaceChildren(status('err', 'Could not read the dropped files: ' + (error.message || error)));
    }
  });
  return zone;
}
