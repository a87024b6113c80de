/*! Spikes feedback widget (self-hosted). Plain JS, no dependencies.
 * Include with a script tag: src="/widget.js" data-project="<share id>"
 * data-endpoint="https://host/spikes" (POST URL, verbatim; default: spikes
 * beside this script), data-position, data-color, data-theme, data-reviewer,
 * data-collect-email="true", data-admin="true" (badge only), data-offset-x and
 * data-offset-y (a length in px from the corner toward the middle of the page).
 * Wire format: CLIENTS.md "Widget -> POST /spikes". A failed send keeps the
 * form; a retry reuses the same id so the server can deduplicate.
 */
(function () {
  'use strict';
  var w = window, d = document;
  if (!w || !d || w.__spikesWidgetLoaded) return;
  w.__spikesWidgetLoaded = true;

  var VERSION = '1.0.0';
  var ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-';
  var POSITIONS = ['bottom-right', 'bottom-left', 'top-right', 'top-left'];
  // Inline SVG, not emoji: many Linux desktops (and headless browsers) have no emoji font.
  function icon(shape) {
    return '<svg viewBox="0 0 24 24" width="20" height="20" fill="none" stroke="currentColor" stroke-width="2" ' +
      'stroke-linecap="round" stroke-linejoin="round" focusable="false">' + shape + '</svg>';
  }
  var RATINGS = [
    ['love', icon('<path d="M20.8 4.6a5.5 5.5 0 0 0-7.8 0L12 5.7l-1-1.1a5.5 5.5 0 0 0-7.8 7.8l1 1.1L12 21l7.8-7.5 1-1.1a5.5 5.5 0 0 0 0-7.8z"/>'), 'Love'],
    ['like', icon('<path d="M14 9V5a3 3 0 0 0-3-3l-4 9v11h11.3a2 2 0 0 0 2-1.7l1.4-9a2 2 0 0 0-2-2.3zM7 22H4a2 2 0 0 1-2-2v-7a2 2 0 0 1 2-2h3"/>'), 'Like'],
    ['meh', icon('<circle cx="12" cy="12" r="10"/><path d="M8 15h8M9 9h.01M15 9h.01"/>'), 'Meh'],
    ['no', icon('<path d="M10 15v4a3 3 0 0 0 3 3l4-9V2H5.7a2 2 0 0 0-2 1.7l-1.4 9a2 2 0 0 0 2 2.3zm7-13h2.7A2.3 2.3 0 0 1 22 4v7a2.3 2.3 0 0 1-2.3 2H17"/>'), 'No']
  ];
  var REVIEWER_KEY = 'spikes:reviewer';
  var XHTML = 'http://www.w3.org/1999/xhtml';

  // Must be read synchronously while the script runs.
  var script = d.currentScript || (function () {
    var list = d.querySelectorAll('script[src*="widget.js"]');
    return list.length ? list[list.length - 1] : null;
  })();

  function attr(name) {
    var v = script ? script.getAttribute(name) : null;
    return v == null ? '' : String(v).trim();
  }

  // Beside the script, as this server serves both: <base>/widget.js posts to <base>/spikes,
  // also when <base> carries an API Gateway stage (https://id.execute-api…/api).
  function defaultEndpoint() {
    try {
      var u = script && script.src ? new URL('spikes', new URL(script.src, location.href))
        : new URL('/spikes', location.href);
      if (u.origin && u.origin !== 'null') return u.href;
    } catch (e) { /* fall through */ }
    return '/spikes';
  }

  function validColor(c) {
    if (!c) return '';
    try {
      if (w.CSS && typeof w.CSS.supports === 'function') return w.CSS.supports('color', c) ? c : '';
    } catch (e) { /* fall through */ }
    return /^(#[0-9a-f]{3,8}|[a-z]+|(rgb|hsl)a?\([\d\s.,%\/]+\))$/i.test(c) ? c : '';
  }

  // Upstream's data-offset-x/-y: a CSS length ("50px", "2rem", "10") whose number is taken as
  // px added to the 20px from the corner, so a positive value moves toward the middle.
  function offset(name) {
    var m = /^-?\d+(\.\d+)?/.exec(attr(name));
    var n = m ? parseFloat(m[0]) : 0;
    return isFinite(n) ? n : 0;
  }

  var position = attr('data-position').toLowerCase();
  var cfg = {
    project: attr('data-project') || location.hostname || 'local',
    endpoint: attr('data-endpoint') || defaultEndpoint(),
    position: POSITIONS.indexOf(position) >= 0 ? position : 'bottom-right',
    color: validColor(attr('data-color')) || '#e74c3c',
    theme: attr('data-theme').toLowerCase() === 'light' ? 'light' : 'dark',
    reviewer: attr('data-reviewer'),
    collectEmail: attr('data-collect-email').toLowerCase() === 'true',
    admin: attr('data-admin').toLowerCase() === 'true',
    offsetX: offset('data-offset-x'),
    offsetY: offset('data-offset-y')
  };

  // ---------------------------------------------------------------- utilities

  function nanoid(size) {
    size = size || 21;
    var bytes = null, c = w.crypto || w.msCrypto;
    try {
      if (c && c.getRandomValues) bytes = c.getRandomValues(new Uint8Array(size));
    } catch (e) { bytes = null; }
    var id = '';
    for (var i = 0; i < size; i++) {
      id += ALPHABET[(bytes ? bytes[i] : Math.floor(Math.random() * 256)) & 63];
    }
    return id;
  }

  // Storage: localStorage when it works, an in-memory map always.
  var mem = {};
  function storeGet(k) {
    if (Object.prototype.hasOwnProperty.call(mem, k)) return mem[k];
    try {
      var ls = w.localStorage;
      if (ls) return ls.getItem(k);
    } catch (e) { /* sandboxed / private mode */ }
    return null;
  }
  function storeSet(k, v) {
    mem[k] = v;
    try {
      var ls = w.localStorage;
      if (ls) ls.setItem(k, v);
    } catch (e) { /* quota / sandboxed */ }
  }

  function loadReviewer() {
    var r = null;
    try { r = JSON.parse(storeGet(REVIEWER_KEY) || 'null'); } catch (e) { r = null; }
    if (!r || typeof r !== 'object') r = {};
    if (typeof r.id !== 'string' || !r.id || r.id === 'anon') {
      r.id = nanoid();
      r.createdAt = new Date().toISOString();
      storeSet(REVIEWER_KEY, JSON.stringify(r));
    }
    return r;
  }
  function rememberReviewer(name, email) {
    var r = loadReviewer();
    if (name) r.name = name; else delete r.name;
    if (email) r.email = email;
    storeSet(REVIEWER_KEY, JSON.stringify(r));
    return r;
  }

  function cssEscape(s) {
    if (w.CSS && typeof w.CSS.escape === 'function') return w.CSS.escape(s);
    return String(s)
      .replace(/[^a-zA-Z0-9_\u00A0-\uFFFF-]/g, function (ch) { return '\\' + ch; })
      .replace(/^(-?)(\d)/, '$1\\3$2 ');
  }

  function resolvesTo(sel, el) {
    try { return d.querySelector(sel) === el; } catch (e) { return false; }
  }

  function uniqueIdSelector(el) {
    var id = el.getAttribute && el.getAttribute('id');
    if (!id) return '';
    var sel = '#' + cssEscape(id);
    try { return d.querySelectorAll(sel).length === 1 ? sel : ''; } catch (e) { return ''; }
  }

  function typeStep(el, always) {
    var name = el.localName || el.nodeName.toLowerCase();
    var tag = cssEscape(name);
    var parent = el.parentElement;
    if (!parent) return tag;
    var count = 0, index = 0;
    for (var c = parent.firstElementChild; c; c = c.nextElementSibling) {
      if (c.localName === el.localName && c.namespaceURI === el.namespaceURI) {
        count++;
        if (c === el) index = count;
      }
    }
    return (always || count > 1) ? tag + ':nth-of-type(' + index + ')' : tag;
  }

  function cssPath(el, strict) {
    var parts = [];
    for (var cur = el; cur && cur.nodeType === 1; cur = cur.parentElement) {
      if (cur === d.body) { parts.unshift('body'); break; }
      if (cur === d.documentElement) { parts.unshift('html'); break; }
      var idSel = strict ? '' : uniqueIdSelector(cur);
      if (idSel) { parts.unshift(idSel); break; }
      parts.unshift(typeStep(cur, strict));
    }
    return parts.join(' > ');
  }

  function getSelector(el) {
    var s = uniqueIdSelector(el);
    if (s && resolvesTo(s, el)) return s;
    s = cssPath(el, false);
    if (resolvesTo(s, el)) return s;
    return cssPath(el, true);
  }

  function getXPath(el) {
    var parts = [];
    for (var cur = el; cur && cur.nodeType === 1; cur = cur.parentElement) {
      var name = cur.localName || cur.nodeName.toLowerCase();
      var isHtml = !cur.namespaceURI || cur.namespaceURI === XHTML;
      if (isHtml && (cur === d.documentElement || cur === d.body)) {
        parts.unshift(name);
        continue;
      }
      var idx = 1;
      for (var s = cur.previousElementSibling; s; s = s.previousElementSibling) {
        if (s.localName === cur.localName && s.namespaceURI === cur.namespaceURI) idx++;
      }
      parts.unshift((isHtml ? name : "*[local-name()='" + name + "']") + '[' + idx + ']');
    }
    return '/' + parts.join('/');
  }

  function getElementText(el) {
    var t = '';
    try { t = typeof el.innerText === 'string' ? el.innerText : el.textContent; } catch (e) { t = ''; }
    // Count code points so a surrogate pair is never cut in half.
    return Array.from(String(t || '').trim()).slice(0, 100).join('');
  }

  function getBoundingBox(el) {
    var r = el.getBoundingClientRect();
    var de = d.documentElement;
    var sx = w.pageXOffset || (de && de.scrollLeft) || 0;
    var sy = w.pageYOffset || (de && de.scrollTop) || 0;
    // The element's place in the document, as upstream's widget sends it: negative left of or
    // above the page's origin (a carousel's hidden slide).
    return {
      x: Math.round(r.left + sx),
      y: Math.round(r.top + sy),
      width: Math.max(0, Math.round(r.width)),
      height: Math.max(0, Math.round(r.height))
    };
  }

  function elementData(el) {
    return {
      selector: getSelector(el),
      xpath: getXPath(el),
      elementText: getElementText(el),
      boundingBox: getBoundingBox(el)
    };
  }

  function describe(el) {
    var s = (el.localName || el.nodeName.toLowerCase());
    if (el.id) s += '#' + el.id;
    else if (el.classList && el.classList.length) s += '.' + el.classList[0];
    return s;
  }

  // ------------------------------------------------------------------ markup

  var CSS_TEXT = [
    ':host{all:initial!important;display:block!important}',
    '.spk-root,.spk-root *,.spk-root ::before{box-sizing:border-box}',
    '.spk-root [hidden]{display:none!important}',
    '.spk-root{--spk-accent:#e74c3c;--spk-on-accent:#fff;--spk-bg:#141417;--spk-fg:#fafafa;--spk-muted:#a1a1aa;',
    '--spk-line:#3f3f46;--spk-field:#09090b;--spk-err:#f87171;position:fixed;z-index:2147483647;display:flex;',
    'flex-direction:column-reverse;align-items:flex-end;gap:10px;text-align:left;direction:ltr;color:var(--spk-fg);',
    'font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif}',
    '.spk-theme-light{--spk-bg:#fff;--spk-fg:#18181b;--spk-muted:#52525b;--spk-line:#d4d4d8;--spk-field:#fafafa;--spk-err:#b91c1c}',
    '.spk-pos-bottom-right{right:20px;bottom:20px}',
    '.spk-pos-bottom-left{left:20px;bottom:20px;align-items:flex-start}',
    '.spk-pos-top-right{right:20px;top:20px;flex-direction:column}',
    '.spk-pos-top-left{left:20px;top:20px;flex-direction:column;align-items:flex-start}',
    '.spk-root button,.spk-root input,.spk-root textarea{font:inherit;color:inherit;margin:0}',
    '.spk-root button{cursor:pointer}',
    '.spk-root :focus{outline:2px solid var(--spk-accent);outline-offset:2px}',
    '.spk-root :focus:not(:focus-visible){outline:none}',
    '.spk-launcher{position:relative;width:48px;height:48px;padding:0;border:0;border-radius:50%;display:flex;',
    'align-items:center;justify-content:center;background:var(--spk-accent);color:var(--spk-on-accent);',
    'box-shadow:0 4px 14px rgba(0,0,0,.3)}',
    '.spk-root .spk-launcher:focus-visible{outline:3px solid var(--spk-accent);outline-offset:3px;box-shadow:0 0 0 3px #fff}',
    '.spk-launcher svg{width:24px;height:24px}',
    '.spk-launcher .spk-badge{position:absolute;top:-4px;right:-4px}',
    '.spk-badge{font-size:10px;padding:0 5px;border-radius:9px;background:var(--spk-fg);color:var(--spk-bg);font-weight:600}',
    '.spk-panel{width:320px;max-width:calc(100vw - 40px);max-height:calc(100vh - 100px);overflow:auto;padding:14px;',
    'background:var(--spk-bg);border:1px solid var(--spk-line);border-radius:12px;box-shadow:0 12px 32px rgba(0,0,0,.35)}',
    '.spk-root .spk-panel:focus{outline:none}',
    '.spk-head,.spk-actions{display:flex;align-items:center;gap:8px;margin:0 0 10px}',
    '.spk-actions{justify-content:flex-end;margin:0}',
    '.spk-title{flex:1;font-weight:600;font-size:15px;margin:0}',
    '.spk-close{width:28px;height:28px;padding:0;border:0;border-radius:6px;background:none;color:var(--spk-muted);font-size:20px}',
    '.spk-close:hover{color:var(--spk-fg);background:var(--spk-line)}',
    '.spk-menu{display:grid;gap:8px}',
    '.spk-btn{border:1px solid var(--spk-line);background:var(--spk-field);border-radius:8px;padding:8px 12px}',
    '.spk-btn:hover{border-color:var(--spk-accent)}',
    '.spk-mode{width:100%;text-align:left;font-weight:600}',
    '.spk-mode small,.spk-target,.spk-field>span{display:block;font-size:12px;font-weight:400;color:var(--spk-muted)}',
    '.spk-target{margin:0 0 10px;overflow-wrap:anywhere}',
    '.spk-ratings{display:grid;grid-template-columns:repeat(4,1fr);gap:6px;margin:0 0 10px}',
    '.spk-rating{display:flex;flex-direction:column;align-items:center;padding:6px 2px;font-size:12px}',
    '.spk-rating span{font-size:18px}',
    '.spk-rating[aria-pressed="true"]{border-color:var(--spk-accent);box-shadow:inset 0 0 0 1px var(--spk-accent);font-weight:700}',
    '.spk-field{display:block;margin:0 0 10px}',
    '.spk-field>span{margin:0 0 4px}',
    '.spk-field input,.spk-field textarea{display:block;width:100%;padding:8px 10px;border:1px solid var(--spk-line);',
    'border-radius:8px;background:var(--spk-field)}',
    '.spk-field textarea{resize:vertical;min-height:80px}',
    '.spk-error{margin:0 0 10px;padding:8px 10px;border:1px solid var(--spk-err);border-radius:8px;color:var(--spk-err)}',
    '.spk-primary{background:var(--spk-accent);border-color:var(--spk-accent);color:var(--spk-on-accent);font-weight:600}',
    '.spk-primary[disabled]{opacity:.6;cursor:progress}',
    '.spk-success{padding:18px 4px;text-align:center;font-weight:600}',
    '.spk-pick-hint{position:fixed;left:50%;top:16px;transform:translateX(-50%);display:flex;align-items:center;gap:10px;',
    'max-width:calc(100vw - 32px);padding:8px 8px 8px 14px;border-radius:10px;background:var(--spk-bg);',
    'border:1px solid var(--spk-line);box-shadow:0 8px 24px rgba(0,0,0,.3)}',
    '.spk-pos-top-right .spk-pick-hint,.spk-pos-top-left .spk-pick-hint{top:auto;bottom:16px}',
    '.spk-highlight{position:fixed;pointer-events:none;border:2px solid var(--spk-accent);border-radius:3px}',
    '.spk-highlight::before{content:"";position:absolute;top:0;left:0;right:0;bottom:0;background:var(--spk-accent);opacity:.12}',
    '.spk-selected{border-style:dashed}',
    '.spk-highlight-label{position:absolute;left:-2px;bottom:100%;margin-bottom:2px;padding:0 5px;border-radius:3px;',
    'background:var(--spk-accent);color:var(--spk-on-accent);font:11px/1.6 ui-monospace,Menlo,monospace;',
    'white-space:nowrap;max-width:60vw;overflow:hidden;text-overflow:ellipsis}',
    '.spk-label-in .spk-highlight-label{bottom:auto;top:0;margin:0}',
    '.spk-spot{position:fixed;pointer-events:none;border:3px solid var(--spk-spot);border-radius:4px}',
    '.spk-spot span{position:absolute;right:-3px;bottom:100%;padding:0 6px;border-radius:4px 4px 0 0;',
    'background:var(--spk-spot);color:#fff;font:600 12px/1.7 system-ui,sans-serif;white-space:nowrap}'
  ].join('');

  var ICON = '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" ' +
    'stroke-linejoin="round" aria-hidden="true" focusable="false"><path d="M21 12a8 8 0 0 1-11.6 7.1L4 20l1-4.6A8 8 0 1 1 21 12z"/>' +
    '<path d="M8.5 12h.01M12 12h.01M15.5 12h.01"/></svg>';

  function markup() {
    var badge = cfg.admin ? '<span class="spk-badge spk-admin-badge" title="Admin mode">admin</span>' : '';
    var ratings = RATINGS.map(function (r) {
      return '<button type="button" class="spk-btn spk-rating" data-rating="' + r[0] + '" aria-pressed="false">' +
        '<span aria-hidden="true">' + r[1] + '</span>' + r[2] + '</button>';
    }).join('');
    var email = cfg.collectEmail
      ? '<label class="spk-field"><span>Email (optional)</span>' +
        '<input class="spk-email" type="email" name="email" autocomplete="email" maxlength="254"></label>'
      : '';
    return '' +
      '<button type="button" class="spk-launcher" aria-label="Give feedback" aria-haspopup="dialog" aria-expanded="false">' +
        ICON + (cfg.admin ? '<span class="spk-badge" aria-hidden="true">A</span>' : '') + '</button>' +
      '<div class="spk-panel" role="dialog" aria-label="Spikes feedback" tabindex="-1" hidden>' +
        '<div class="spk-head"><p class="spk-title">Feedback</p>' + badge +
          '<button type="button" class="spk-close" aria-label="Close feedback">\u00D7</button></div>' +
        '<div class="spk-view spk-menu" data-view="menu">' +
          '<button type="button" class="spk-btn spk-mode spk-mode-page" data-mode="page">Page feedback' +
            '<small>Comment on this page as a whole</small></button>' +
          '<button type="button" class="spk-btn spk-mode spk-mode-element" data-mode="element">Pick an element' +
            '<small>Click the part of the page you mean</small></button>' +
        '</div>' +
        '<form class="spk-view spk-form" data-view="form" novalidate hidden>' +
          '<p class="spk-target"></p>' +
          '<div class="spk-ratings" role="group" aria-label="Rating (optional)">' + ratings + '</div>' +
          '<label class="spk-field"><span>Comment</span><textarea class="spk-comment" name="comments" rows="4"></textarea></label>' +
          '<label class="spk-field"><span>Your name</span><input class="spk-name" type="text" name="name" ' +
            'autocomplete="name" maxlength="100" placeholder="Anonymous"></label>' +
          email +
          '<p class="spk-error" role="alert" hidden></p>' +
          '<div class="spk-actions"><button type="button" class="spk-btn spk-cancel">Cancel</button>' +
            '<button type="submit" class="spk-btn spk-primary spk-submit">Send feedback</button></div>' +
        '</form>' +
        '<div class="spk-view spk-success" data-view="success" role="status" hidden>Thanks! Your feedback was sent.</div>' +
      '</div>' +
      '<div class="spk-pick-hint" role="status" hidden><span>Click an element to give feedback on it. Press Esc to cancel.</span>' +
        '<button type="button" class="spk-btn spk-pick-cancel">Cancel</button></div>' +
      '<div class="spk-highlight" aria-hidden="true" hidden><span class="spk-highlight-label"></span></div>';
  }

  // ------------------------------------------------------------------- state

  var host = null, root = null, ui = {};
  var st = { open: false, picking: false, sending: false, view: 'menu', draft: null, rating: null, hlTarget: null, pendingOpen: false };
  var successTimer = null, rafPending = false;

  function $(sel) { return root.querySelector(sel); }

  function init() {
    if (host) return true;
    if (!d.body) return false;
    host = d.createElement('spikes-widget');
    host.setAttribute('data-spikes-version', VERSION);
    var shadow;
    try { shadow = host.attachShadow({ mode: 'open' }); } catch (e) { shadow = host; }
    var style = d.createElement('style');
    style.textContent = CSS_TEXT;
    root = d.createElement('div');
    root.className = 'spk-root spk-theme-' + cfg.theme + ' spk-pos-' + cfg.position;
    root.style.setProperty('--spk-accent', cfg.color);
    var corner = cfg.position.split('-');  // [top|bottom, left|right]
    if (cfg.offsetY) root.style[corner[0]] = Math.max(0, 20 + cfg.offsetY) + 'px';
    if (cfg.offsetX) root.style[corner[1]] = Math.max(0, 20 + cfg.offsetX) + 'px';
    root.innerHTML = markup();
    shadow.appendChild(style);
    shadow.appendChild(root);
    d.body.appendChild(host);

    var names = ['launcher', 'panel', 'menu', 'form', 'success', 'target', 'comment', 'name', 'email', 'error', 'submit'];
    names.forEach(function (n) { ui[n] = $('.spk-' + n); });
    ui.hint = $('.spk-pick-hint');
    ui.hl = $('.spk-highlight');
    ui.hlLabel = $('.spk-highlight-label');
    ui.ratings = Array.prototype.slice.call(root.querySelectorAll('.spk-rating'));

    setContrast();

    ui.launcher.addEventListener('click', function () {
      if (st.picking) cancelPicking();
      else if (st.open) closePanel(true);
      else openPanel();
    });
    $('.spk-close').addEventListener('click', function () { closePanel(true); });
    $('.spk-mode-page').addEventListener('click', function () { startDraft('page', null); });
    $('.spk-mode-element').addEventListener('click', startPicking);
    $('.spk-cancel').addEventListener('click', function () { st.draft = null; closePanel(true); });
    $('.spk-pick-cancel').addEventListener('click', cancelPicking);
    ui.ratings.forEach(function (b) {
      b.addEventListener('click', function () {
        setRating(st.rating === b.getAttribute('data-rating') ? null : b.getAttribute('data-rating'));
      });
    });
    ui.form.addEventListener('submit', onSubmit);
    ui.comment.addEventListener('keydown', function (e) {
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); onSubmit(e); }
    });
    root.addEventListener('keydown', function (e) {
      if ((e.key === 'Escape' || e.key === 'Esc') && st.open) {
        e.preventDefault();
        e.stopPropagation();
        closePanel(true);
      }
    });
    w.addEventListener('scroll', scheduleHighlight, { capture: true, passive: true });
    w.addEventListener('resize', scheduleHighlight, { passive: true });
    setState('idle');
    showHotspots();
    return true;
  }

  // --------------------------------------------------------------- hotspots
  // The dashboard opens a share as .../s/<slug>/#spikes-hotspots=<JSON list of {s: selector,
  // p: page, n: count, r: worst rating}>: outline those elements. The fragment never reaches
  // the server; selectors are only looked up, labels are text.

  var SPOT_COLORS = { no: '#dc2626', meh: '#d97706', like: '#16a34a', love: '#c026d3', none: '#64748b' };

  function readHotspots() {
    var m = /[#&]spikes-hotspots=([^&]*)/.exec(location.hash || '');
    if (!m) return [];
    try {
      var list = JSON.parse(decodeURIComponent(m[1]));
      return Array.isArray(list) ? list.slice(0, 50) : [];
    } catch (e) { return []; }
  }

  function spotCount(n) {
    var count = Math.floor(Number(n));
    return count > 0 && count < 1e9 ? count : 0;
  }

  function showHotspots() {
    var here = [d.title, location.pathname, ''];
    var spots = [];
    readHotspots().forEach(function (spot) {
      if (!spot || typeof spot.s !== 'string' || (spot.p && here.indexOf(spot.p) < 0)) return;
      var el = null;
      try { el = d.querySelector(spot.s); } catch (e) { return; }
      if (!el || isOurs(el)) return;
      var box = d.createElement('div');
      box.className = 'spk-spot';
      box.setAttribute('data-spikes-hotspot', spot.s);
      // Anyone can send a link with this fragment: only a rating we know and a count are
      // shown, never the link's own words, on a page served from this origin.
      var rating = Object.prototype.hasOwnProperty.call(SPOT_COLORS, spot.r) ? spot.r : 'none';
      box.style.setProperty('--spk-spot', SPOT_COLORS[rating]);
      var label = d.createElement('span');
      label.textContent = spotCount(spot.n) + ' feedback' + (rating !== 'none' ? ' \u00b7 worst: ' + rating : '');
      box.appendChild(label);
      root.appendChild(box);
      spots.push({ el: el, box: box });
    });
    if (!spots.length) return;
    function place() {
      spots.forEach(function (spot) {
        var r = spot.el.getBoundingClientRect();
        spot.box.style.left = (r.left - 3) + 'px';
        spot.box.style.top = (r.top - 3) + 'px';
        spot.box.style.width = (r.width + 6) + 'px';
        spot.box.style.height = (r.height + 6) + 'px';
      });
    }
    place();
    w.addEventListener('scroll', place, { capture: true, passive: true });
    w.addEventListener('resize', place, { passive: true });
    try { spots[0].el.scrollIntoView({ block: 'center' }); } catch (e) { /* old browsers */ }
  }

  function setContrast() {
    try {
      var bg = w.getComputedStyle(ui.launcher).backgroundColor || '';
      if (!/^rgba?\(/.test(bg)) return;
      var m = bg.match(/[\d.]+/g).map(Number);
      if ((0.299 * m[0] + 0.587 * m[1] + 0.114 * m[2]) / 255 > 0.62) root.style.setProperty('--spk-on-accent', '#111');
    } catch (e) { /* keep white */ }
  }

  function setState(s) { if (host) host.setAttribute('data-state', s); }

  function showView(name) {
    st.view = name;
    ui.menu.hidden = name !== 'menu';
    ui.form.hidden = name !== 'form';
    ui.success.hidden = name !== 'success';
    $('.spk-title').textContent = name === 'form'
      ? (st.draft && st.draft.type === 'element' ? 'Element feedback' : 'Page feedback')
      : 'Feedback';
  }

  function focusInView() {
    var el = st.view === 'form' ? ui.comment : st.view === 'menu' ? $('.spk-mode-page') : ui.panel;
    try { el.focus({ preventScroll: true }); } catch (e) { el.focus(); }
  }

  function focusInside() {
    var a = d.activeElement;
    return !a || a === d.body || a === host || (host && host.contains(a));
  }

  function openPanel() {
    if (!init()) { st.pendingOpen = true; return; }
    if (st.picking) stopPicking();
    clearTimeout(successTimer);
    st.open = true;
    ui.panel.hidden = false;
    ui.launcher.setAttribute('aria-expanded', 'true');
    showView(st.draft ? 'form' : 'menu');
    if (st.draft && st.draft.el) showHighlight(st.draft.el, true); else hideHighlight();
    focusInView();
    setState(st.draft ? (ui.error.hidden ? 'form' : 'error') : 'open');
  }

  function closePanel(restoreFocus) {
    if (!host) return;
    clearTimeout(successTimer);
    var hadFocus = focusInside();
    st.open = false;
    ui.panel.hidden = true;
    ui.launcher.setAttribute('aria-expanded', 'false');
    if (!st.picking) hideHighlight();
    if (st.view === 'success') showView('menu');
    setState('idle');
    if (restoreFocus && hadFocus) ui.launcher.focus();
  }

  // ------------------------------------------------------------------- form

  function setRating(r) {
    st.rating = r;
    ui.ratings.forEach(function (b) {
      b.setAttribute('aria-pressed', b.getAttribute('data-rating') === r ? 'true' : 'false');
    });
  }

  function hideError() {
    ui.error.hidden = true;
    ui.error.textContent = '';
  }

  function showError(msg) {
    ui.error.hidden = false;
    ui.error.textContent = msg;
    setState('error');
  }

  function startDraft(type, el) {
    st.draft = { id: nanoid(), type: type, el: el, data: el ? elementData(el) : null };
    var r = loadReviewer();
    setRating(null);
    ui.comment.value = '';
    ui.name.value = r.name || cfg.reviewer || '';
    if (ui.email) ui.email.value = r.email || '';
    hideError();
    setSending(false);
    ui.submit.textContent = 'Send feedback';
    if (type === 'element') {
      var t = st.draft.data.elementText;
      ui.target.textContent = 'On ' + describe(el) + (t ? ': \u201C' + Array.from(t).slice(0, 60).join('') + '\u201D' : '');
    } else {
      ui.target.textContent = 'On this page: ' + (d.title || location.pathname);
    }
    openPanel();
  }

  function setSending(on) {
    st.sending = on;
    ui.submit.disabled = on;
    ui.form.setAttribute('aria-busy', on ? 'true' : 'false');
    if (on) ui.submit.textContent = 'Sending\u2026';
  }

  function buildPayload(draft, name, email) {
    var r = loadReviewer();
    var reviewer = { id: r.id, name: name || 'Anonymous' };
    if (email) reviewer.email = email;
    var p = {
      id: draft.id,
      type: draft.type,
      projectKey: cfg.project,
      page: d.title || location.pathname,
      url: location.href,
      reviewer: reviewer,
      rating: st.rating,
      comments: ui.comment.value,
      timestamp: new Date().toISOString(),
      viewport: { width: w.innerWidth, height: w.innerHeight }
    };
    if (draft.type === 'element' && draft.data) {
      p.selector = draft.data.selector;
      p.xpath = draft.data.xpath;
      p.elementText = draft.data.elementText;
      p.boundingBox = draft.data.boundingBox;
    }
    return p;
  }

  function onSubmit(e) {
    if (e && e.preventDefault) e.preventDefault();
    if (st.sending || !st.draft) return;
    var name = ui.name.value.trim();
    var email = ui.email ? ui.email.value.trim() : '';
    if (email && !/^[^\s@]+@[^\s@]+$/.test(email)) {
      showError('Please enter a valid email address, or leave it empty.');
      ui.email.focus();
      return;
    }
    rememberReviewer(name, email);
    var draft = st.draft;
    var payload = buildPayload(draft, name, email);
    hideError();
    setSending(true);
    setState('sending');
    post(payload, function (ok, status) {
      if (st.draft !== draft) return; // cancelled or replaced meanwhile
      setSending(false);
      if (ok) {
        st.draft = null;
        host.setAttribute('data-last-result', 'success');
        ui.submit.textContent = 'Send feedback';
        hideHighlight();
        var hadFocus = focusInside();
        showView('success');
        setState('sent');
        if (!st.open) return;
        if (hadFocus) ui.panel.focus();
        successTimer = setTimeout(function () { if (st.view === 'success') closePanel(true); }, 1800);
      } else {
        host.setAttribute('data-last-result', 'error');
        ui.submit.textContent = 'Try again';
        showError(status === 0
          ? 'Could not reach the feedback server. Check your connection and try again.'
          : status === 429
            ? 'Too many submissions right now. Please wait a moment and try again.'
            : 'Sending failed (HTTP ' + status + '). Please try again.');
      }
    });
  }

  function post(payload, done) {
    var finished = false;
    function finish(ok, status) {
      if (finished) return;
      finished = true;
      done(ok, status);
    }
    try {
      var xhr = new XMLHttpRequest();
      xhr.open('POST', cfg.endpoint, true);
      xhr.withCredentials = false;
      xhr.setRequestHeader('Content-Type', 'application/json');
      xhr.timeout = 20000;
      xhr.onload = function () { finish(xhr.status >= 200 && xhr.status < 300, xhr.status); };
      xhr.onerror = xhr.ontimeout = xhr.onabort = function () { finish(false, 0); };
      xhr.send(JSON.stringify(payload));
    } catch (err) {
      setTimeout(function () { finish(false, 0); }, 0);
    }
  }

  // -------------------------------------------------------------- highlight

  function showHighlight(el, selected) {
    st.hlTarget = el;
    ui.hl.hidden = false;
    ui.hl.classList.toggle('spk-selected', !!selected);
    ui.hlLabel.textContent = describe(el);
    positionHighlight();
  }

  function hideHighlight() {
    st.hlTarget = null;
    if (ui.hl) ui.hl.hidden = true;
  }

  function positionHighlight() {
    rafPending = false;
    var el = st.hlTarget;
    if (!el || ui.hl.hidden) return;
    if (!el.isConnected) { ui.hl.hidden = true; return; }
    var r = el.getBoundingClientRect();
    var s = ui.hl.style;
    s.left = r.left + 'px';
    s.top = r.top + 'px';
    s.width = r.width + 'px';
    s.height = r.height + 'px';
    ui.hl.classList.toggle('spk-label-in', r.top < 22);
  }

  function scheduleHighlight() {
    if (rafPending || !st.hlTarget) return;
    rafPending = true;
    (w.requestAnimationFrame || setTimeout)(positionHighlight);
  }

  // ---------------------------------------------------------------- picking

  var BLOCKED = ['click', 'mousedown', 'mouseup', 'pointerdown', 'pointerup', 'dblclick', 'auxclick', 'contextmenu', 'submit'];

  function isOurs(t) { return !!t && (t === host || (host && host.contains(t))); }

  function pageTarget(e) {
    var t = e.target;
    if (t && t.nodeType !== 1) t = t.parentElement;
    return t && t.nodeType === 1 && !isOurs(t) ? t : null;
  }

  function swallow(e) {
    e.preventDefault();
    e.stopPropagation();
    if (e.stopImmediatePropagation) e.stopImmediatePropagation();
  }

  function onPickMove(e) {
    var t = pageTarget(e);
    if (!t) { hideHighlight(); return; }
    if (t !== st.hlTarget) showHighlight(t, false);
  }

  function onPickBlock(e) {
    var t = pageTarget(e);
    if (!t) return;
    swallow(e);
    if (e.type === 'click') selectElement(t);
  }

  function onPickKey(e) {
    if (e.key === 'Escape' || e.key === 'Esc') {
      swallow(e);
      cancelPicking();
    } else if (e.key === 'Enter') {
      var t = d.activeElement;
      if (t && !isOurs(t) && t !== d.body && t !== d.documentElement) {
        swallow(e);
        selectElement(t);
      }
    }
  }

  function onPickFocus(e) {
    var t = pageTarget(e);
    if (t) showHighlight(t, false);
  }

  function listenPicking(on) {
    var fn = on ? 'addEventListener' : 'removeEventListener';
    var opts = { capture: true, passive: false };
    BLOCKED.forEach(function (type) { w[fn](type, onPickBlock, opts); });
    w[fn]('mousemove', onPickMove, true);
    w[fn]('mouseover', onPickMove, true);
    w[fn]('keydown', onPickKey, true);
    w[fn]('focusin', onPickFocus, true);
  }

  function startPicking() {
    if (!init() || st.picking) return;
    closePanel(false);
    st.picking = true;
    listenPicking(true);
    ui.hint.hidden = false;
    ui.launcher.setAttribute('aria-expanded', 'false');
    setState('picking');
    var c = $('.spk-pick-cancel');
    try { c.focus({ preventScroll: true }); } catch (e) { c.focus(); }
  }

  function stopPicking() {
    if (!st.picking) return;
    st.picking = false;
    listenPicking(false);
    ui.hint.hidden = true;
    hideHighlight();
  }

  function cancelPicking() {
    var hadFocus = focusInside();
    stopPicking();
    setState('idle');
    if (hadFocus) ui.launcher.focus();
  }

  function selectElement(el) {
    stopPicking();
    startDraft('element', el);
  }

  // ------------------------------------------------------------------ start

  w.SpikesWidget = {
    version: VERSION,
    config: {
      project: cfg.project, endpoint: cfg.endpoint, position: cfg.position, color: cfg.color,
      theme: cfg.theme, reviewer: cfg.reviewer, collectEmail: cfg.collectEmail, admin: cfg.admin,
      offsetX: cfg.offsetX, offsetY: cfg.offsetY
    },
    open: function () { openPanel(); },
    close: function () { if (st.picking) cancelPicking(); else closePanel(true); }
  };

  if (!init()) {
    d.addEventListener('DOMContentLoaded', function () {
      if (init() && st.pendingOpen) openPanel();
    });
  }
})();
