// Creating a share from dropped folders or picked files, through the presigned flow: announce
// the files (POST /shares/uploads), PUT each one straight to S3 with progress, then
// POST /shares/{id}/complete. No size is bound by API Gateway's request limit this way.

import { api, ApiError } from './api.js';

const SKIPPED = /(^|\/)(\.DS_Store|Thumbs\.db|desktop\.ini)$|(^|\/)__MACOSX\//;
const PARALLEL_PUTS = 4;

// Files of a drop, folders walked, each with the path it had under what was dropped.
export async function filesFromDrop(dataTransfer) {
  const entries = [...dataTransfer.items || []]
    .map((item) => (item.webkitGetAsEntry ? item.webkitGetAsEntry() : null)).filter(Boolean);
  if (!entries.length) return [...dataTransfer.files].map((file) => ({ file, path: file.name }));
  const found = [];
  for (const entry of entries) await walk(entry, found);
  return found;
}

async function walk(entry, found) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    found.push({ file, path: entry.fullPath.replace(/^\/+/, '') });
    return;
  }
  const reader = entry.createReader();
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) break;
    for (const child of batch) await walk(child, found);
  }
}

export function filesFromInput(input) {
  return [...input.files].map((file) => ({ file, path: file.webkitRelativePath || file.name }));
}

// One dropped folder becomes the share's root: "site/index.html" is served as "index.html".
export function normalise(items) {
  const kept = items.filter((item) => !SKIPPED.test(item.path));
  const tops = new Set(kept.map((item) => (item.path.includes('/') ? item.path.split('/')[0] : '')));
  const [top] = tops;
  const strip = tops.size === 1 && top ? top.length + 1 : 0;
  return { folder: strip ? top : null, items: kept.map((item) => ({ file: item.file, path: item.path.slice(strip) })) };
}

function put(target, file, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open(target.method || 'PUT', target.url);
    for (const [name, value] of Object.entries(target.headers || {})) {
      // The browser sets Content-Length and Host itself (the signed length is the file's size).
      if (!/^(content-length|host)$/i.test(name)) request.setRequestHeader(name, value);
    }
    request.upload.onprogress = (event) => onProgress(event.loaded);
    request.onload = () => {
      if (request.status >= 200 && request.status < 300) { onProgress(file.size); resolve(); return; }
      reject(new ApiError(request.status, { error: `Storage refused ${target.path} (HTTP ${request.status}). ` +
        'The upload link may have expired; retry the upload.' }));
    };
    request.onerror = () => reject(new ApiError(0, { error: `Could not send ${target.path} to storage: the connection failed.` }));
    request.send(file);
  });
}

// Returns the completed share. ``onProgress(sentBytes, totalBytes, phase)`` reports progress.
export async function uploadShare(name, items, onProgress) {
  const total = items.reduce((sum, item) => sum + item.file.size, 0);
  onProgress(0, total, 'announcing');
  const announced = await api('POST', '/shares/uploads', {
    body: { name, files: items.map((item) => ({ path: item.path, size: item.file.size })) },
  });
  const byPath = new Map(items.map((item) => [item.path, item.file]));
  const sent = new Map();
  const report = () => onProgress([...sent.values()].reduce((a, b) => a + b, 0), total, 'uploading');
  const queue = [...announced.uploads];
  const worker = async () => {
    while (queue.length) {
      const target = queue.shift();
      // The server names files by their normalised paths, in the order they were announced.
      const file = byPath.get(target.path) || items[announced.uploads.indexOf(target)].file;
      await put(target, file, (loaded) => { sent.set(target.path, loaded); report(); });
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(PARALLEL_PUTS, queue.length) }, worker));
  } catch (error) {
    error.pendingShare = announced;
    throw error;
  }
  onProgress(total, total, 'completing');
  const completed = await api('POST', `/shares/${encodeURIComponent(announced.share_id)}/complete`);
  return completed;
}
