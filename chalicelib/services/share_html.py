"""What is added to a share's HTML when it is served: the feedback widget and, for protected
shares, a <base> that carries the access path to the page's relative URLs."""
from __future__ import annotations

import html
import re


def widget_tag(base_url: str, share_id: str) -> str:
    return (f'<script src="{html.escape(base_url)}/widget.js" data-endpoint="{html.escape(base_url)}/spikes" '
            f'data-project="{html.escape(share_id)}"></script>')


_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
_EXISTING_WIDGET = re.compile(r"<script\b[^>]*\bsrc\s*=\s*[\"']?[^\"'>\s]*/widget\.js", re.IGNORECASE)


def inject_widget(page: str, tag: str) -> str:
    """Add the widget before the last ``</body>`` (or at the end), unless the page has it."""
    if _EXISTING_WIDGET.search(page):
        return page
    ends = list(_BODY_END.finditer(page))
    if not ends:
        return page + tag
    at = ends[-1].start()
    return page[:at] + tag + page[at:]


_HEAD_START = re.compile(r"<head\b[^>]*>", re.IGNORECASE)
_HTML_START = re.compile(r"<html\b[^>]*>", re.IGNORECASE)
_DOCTYPE = re.compile(r"^\s*<!doctype[^>]*>", re.IGNORECASE)
_EXISTING_BASE = re.compile(r"<base\b[^>]*\bhref", re.IGNORECASE)


def inject_base(page: str, href: str) -> str:
    """Make relative URLs resolve under ``href``: first thing in <head> (or where a <head>
    would start). A page with its own <base href> keeps it."""
    if _EXISTING_BASE.search(page):
        return page
    tag = f'<base href="{html.escape(href)}">'
    for pattern in (_HEAD_START, _HTML_START, _DOCTYPE):
        found = pattern.search(page)
        if found:
            return page[:found.end()] + tag + page[found.end():]
    return tag + page
