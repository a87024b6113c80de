"""What is added to a share's HTML when it is served: the feedback widget and, for protected
shares, a <base> that carries the access path to the page's relative URLs; and how a text file
is read before it is sent as UTF-8."""
from __future__ import annotations

import codecs
import html
import re
import zlib
from typing import Iterator, Optional, Tuple

_BYTE_ORDER_MARKS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
# Where a file names its encoding: HTML's <meta charset> (or http-equiv), CSS's @charset, XML's
# declaration.
_DECLARED_ENCODING = re.compile(rb"""<meta\b[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)"""
                                rb'|^\s*@charset\s+"([A-Za-z0-9_.:-]+)"'
                                rb"""|^\s*<\?xml\b[^>]*?encoding\s*=\s*["']([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
# What browsers read a legacy page in when it does not say which encoding (and for the labels
# latin-1 and ascii, which they take for this superset).
LEGACY_ENCODING = "cp1252"


_GZIP_MAGIC = b"\x1f\x8b"


def inflate(body: bytes, limit: int) -> Optional[bytes]:
    """A text file's bytes, decompressed if it is stored gzip-compressed (``.svgz``, typed as the
    SVG it holds; a ``.css.gz``): sent as its text, as a browser would read it from gzip's
    Content-Encoding, which Chalice could only send under a binary type. None when the text is
    over ``limit`` bytes (a small file can hold gigabytes of it)."""
    if not body.startswith(_GZIP_MAGIC):
        return body
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        text = inflater.decompress(body, limit + 1)
    except zlib.error:  # not gzip after all: read as any other text
        return body
    return text if len(text) <= limit else None


def decode_text(body: bytes) -> str:
    """A text file as text, to be sent as UTF-8 (the answer's charset, which browsers put before
    anything the file says). UTF-8 as it is; a file in another encoding keeps its letters: its
    byte order mark or the encoding it declares decides; an undeclared one is UTF-8 if any of
    it is (a stray byte in a UTF-8 page), else windows-1252."""
    for mark, encoding in _BYTE_ORDER_MARKS:
        if body.startswith(mark):
            return body.decode(encoding, errors="replace")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    declared = _DECLARED_ENCODING.search(body[:1024])
    encoding = _encoding_named(next(label for label in declared.groups() if label)) if declared else None
    if encoding is None:
        as_utf8 = body.decode("utf-8", errors="replace")
        encoding = "utf-8" if any(ch > "\x7f" and ch != "\ufffd" for ch in as_utf8) else LEGACY_ENCODING
    return body.decode(encoding, errors="replace")


def _encoding_named(label: bytes) -> Optional[str]:
    """The codec a declared label names as browsers read it, None for a label nobody knows."""
    try:
        name = codecs.lookup(label.decode("ascii")).name
    except LookupError:
        return None
    if name.startswith("utf"):  # a page that claims Unicode and is not valid: read as UTF-8
        return "utf-8"
    return LEGACY_ENCODING if name in ("iso8859-1", "latin-1", "ascii") else name


def widget_tag(base_url: str, share_id: str) -> str:
    return (f'<script src="{html.escape(base_url)}/widget.js" data-endpoint="{html.escape(base_url)}/spikes" '
            f'data-project="{html.escape(share_id)}"></script>')


_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
# Tags are found by their opening and the next ">" (``_tags``), never by one regex from "<" to
# ">": that scans to the page's end from every opening a page leaves unclosed, quadratic time on
# a page full of them (an owner's upload), which held a Lambda for its whole timeout per view.
_SCRIPT_START = re.compile(r"<script\b", re.IGNORECASE)
_HEAD_START = re.compile(r"<head\b", re.IGNORECASE)
_HTML_START = re.compile(r"<html\b", re.IGNORECASE)
_BASE_START = re.compile(r"<base\b", re.IGNORECASE)
_DOCTYPE = re.compile(r"^\s*<!doctype[^>]*>", re.IGNORECASE)
# A widget already in the page: ours, or the upstream one `spikes inject` writes
# (<script src="https://spikes.sh/widget.js" data-project=… data-endpoint=…>): its first src
# (as browsers read it) names the widget's file (widget.js, or spikes.js as upstream's README
# writes it), and it carries where it posts (data-project or data-endpoint, the latter alone in
# upstream's self-host snippet) or is spikes.sh's. Another script of that name (the mockup's
# own, a chat vendor's) is left alone.
_SRC_ATTRIBUTE = re.compile(r"""(?<![\w-])src\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]*))""", re.IGNORECASE)
_WIDGET_FILES = ("widget.js", "spikes.js")
_UPSTREAM_WIDGET = re.compile(r"^(?:https?:)?//(?:www\.)?spikes\.sh/", re.IGNORECASE)
_ROUTING_PRESENT = re.compile(r"\sdata-(?:project|endpoint)(?=[\s=/>])", re.IGNORECASE)
_ROUTING_ATTRIBUTE = re.compile(r"(?<!\s)\s+data-(?:project|endpoint)(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'>]+))?",
                                re.IGNORECASE)
_HREF_ATTRIBUTE = re.compile(r"(?<![\w-])href\s*=", re.IGNORECASE)
# Share pages run in a sandbox without allow-same-origin (an opaque origin), where touching
# localStorage or sessionStorage throws. The upstream widget keeps its state there and stops
# before sending: a page-lifetime in-memory Storage stands in, installed before any script.
STORAGE_SHIM = (
    "<script>(function(){function memory(){var d=Object.create(null);return{"
    "get length(){return Object.keys(d).length},key:function(i){var k=Object.keys(d);return i<k.length?k[i]:null},"
    "getItem:function(k){k=String(k);return k in d?d[k]:null},setItem:function(k,v){d[String(k)]=String(v)},"
    "removeItem:function(k){delete d[String(k)]},clear:function(){d=Object.create(null)}}}"
    "['localStorage','sessionStorage'].forEach(function(n){try{window[n].getItem('spikes');return}catch(e){}"
    "try{Object.defineProperty(window,n,{value:memory(),configurable:true})}catch(e){}})})();</script>"
)


def inject_widget(page: str, base_url: str, share_id: str) -> str:
    """Give the page a widget that posts here with the share's id. A page that already has a
    widget tag (``_is_widget_tag``) keeps its script (ours or the upstream
    one) with its project and endpoint rewritten to this server and this share, plus the
    storage shim; any other page gets our widget before the last ``</body>`` (or at the end)."""
    routing = f' data-project="{html.escape(share_id)}" data-endpoint="{html.escape(base_url)}/spikes"'
    parts, copied = [], 0
    for start, end in _tags(page, _SCRIPT_START):
        if _is_widget_tag(page[start:end]):
            tag = _ROUTING_ATTRIBUTE.sub("", page[start:end])
            closing = "/>" if tag.endswith("/>") else ">"
            parts += [page[copied:start], tag[: -len(closing)].rstrip() + routing + closing]
            copied = end
    if parts:
        return _at_head_start("".join(parts) + page[copied:], STORAGE_SHIM)
    tag = widget_tag(base_url, share_id)
    ends = list(_BODY_END.finditer(page))
    if not ends:
        return page + tag
    at = ends[-1].start()
    return page[:at] + tag + page[at:]


def _tags(page: str, opening: re.Pattern) -> Iterator[Tuple[int, int]]:
    """Where each tag that ``opening`` starts begins and ends, in one pass over the page."""
    at = 0
    while True:
        found = opening.search(page, at)
        end = page.find(">", found.end()) if found else -1
        if end == -1:
            return
        yield found.start(), end + 1
        at = end + 1


def _is_widget_tag(tag: str) -> bool:
    src = _SRC_ATTRIBUTE.search(tag)
    address = next((value for value in src.groups() if value is not None), "").strip() if src else ""
    file_name = address.split("#", 1)[0].split("?", 1)[0].rsplit("/", 1)[-1].lower()
    return file_name in _WIDGET_FILES \
        and (_ROUTING_PRESENT.search(tag) is not None or _UPSTREAM_WIDGET.match(address) is not None)


def inject_base(page: str, href: str) -> str:
    """Make relative URLs resolve under ``href``: first thing in <head> (or where a <head>
    would start). A page with its own <base href> keeps it."""
    if any(_HREF_ATTRIBUTE.search(page, start, end) for start, end in _tags(page, _BASE_START)):
        return page
    return _at_head_start(page, f'<base href="{html.escape(href)}">')


def _at_head_start(page: str, tag: str) -> str:
    for opening in (_HEAD_START, _HTML_START):
        first = next(_tags(page, opening), None)
        if first is not None:
            return page[:first[1]] + tag + page[first[1]:]
    found = _DOCTYPE.search(page)
    if found:
        return page[:found.end()] + tag + page[found.end():]
    return tag + page
