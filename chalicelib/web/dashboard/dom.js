// A few helpers for building the page from data: text always goes in as text, never as HTML.

import { describe } from './api.js';

export function h(tag, attributes, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') element.addEventListener(name.slice(2), value);
    else if (name === 'class') element.className = value;
    else if (value === true) element.setAttribute(name, '');
    else element.setAttribute(name, value);
  }
  append(element, children);
  return element;
}

export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

export function replace(parent, ...children) {
  parent.replaceChildren();
  return append(parent, children);
}

// A message area that screen readers announce; errors are red and say what happened.
export function status(kind, text) {
  return h('p', { class: 'msg ' + (kind || ''), role: kind === 'err' ? 'alert' : 'status' }, text);
}

export function when(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

export function bytes(count) {
  const units = ['B', 'KB', 'MB', 'GB'];
  let value = Number(count) || 0;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${value.toFixed(unit && value < 10 ? 1 : 0)} ${units[unit]}`;
}

export const RATINGS = ['love', 'like', 'meh', 'no'];
export const RATING_LABEL = { love: 'Love', like: 'Like', meh: 'Meh', no: 'No', none: 'No rating' };

// Run an async action from a button: disable it meanwhile, show the error in words next to it.
export async function busy(button, messageArea, action) {
  if (button) button.disabled = true;
  if (messageArea) messageArea.replaceChildren();
  try {
    return await action();
  } catch (error) {
    if (messageArea) messageArea.replaceChildren(status('err', describe(error)));
    return undefined;
  } finally {
    if (button && button.isConnected) button.disabled = false;
  }
}
