"""Static assets and small HTML pages shipped with the function."""
from __future__ import annotations

import functools
import html
from pathlib import Path
from string import Template

WEB_DIR = Path(__file__).resolve().parent


@functools.lru_cache(maxsize=None)
def asset(name: str) -> str:
    return (WEB_DIR / name).read_text(encoding="utf-8")


def page(name: str, trusted: dict | None = None, **values: str) -> str:
    """Render ``name`` (a ``string.Template`` file). ``values`` are HTML-escaped; ``trusted``
    holds our own assets (CSS), inserted as they are."""
    escaped = {k: html.escape(v, quote=True) for k, v in values.items()}
    return Template(asset(name)).substitute({**(trusted or {}), **escaped})
