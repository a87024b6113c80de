"""Static assets and small HTML pages shipped with the function."""
from __future__ import annotations

import functools
import html
from pathlib import Path
from string import Template

WEB_DIR = Path(__file__).resolve().parent
# How long browsers keep the widget script and a share's files other than HTML (seconds).
ASSET_MAX_AGE = 300

# GET /docs/{asset}: name -> (file, Content-Type); the API reference documents these types.
DOCS_ASSETS = {
    "swagger-ui.css": ("swagger-ui/swagger-ui.css", "text/css; charset=utf-8"),
    "swagger-ui-bundle.js": ("swagger-ui/swagger-ui-bundle.js", "application/javascript; charset=utf-8"),
    "init.js": ("docs-init.js", "application/javascript; charset=utf-8"),
    "LICENSE": ("swagger-ui/LICENSE", "text/plain; charset=utf-8"),
}


@functools.lru_cache(maxsize=None)
def asset(name: str) -> str:
    return (WEB_DIR / name).read_text(encoding="utf-8")


def page(name: str, trusted: dict | None = None, **values: str) -> str:
    """Render ``name`` (a ``string.Template`` file). ``values`` are HTML-escaped; ``trusted``
    holds our own assets (CSS), inserted as they are."""
    escaped = {k: html.escape(v, quote=True) for k, v in values.items()}
    return Template(asset(name)).substitute({**(trusted or {}), **escaped})
