"""The stable versioned paths: every API route is also served under ``/v1``.

The unversioned paths stay for the clients that already use them (the widget, the CLI, the
MCP server); new integrations should use ``/v1/...``. Share pages (``/s/<slug>/...``) are
addresses handed to people, not API calls, and are served only where their links point.
"""
from __future__ import annotations

from chalice import Chalice

PREFIX = "/v1"
UNVERSIONED_ONLY = ("/s/",)


def versioned(path: str) -> str:
    return PREFIX if path == "/" else PREFIX + path


def is_versioned(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def add_versioned_paths(app: Chalice) -> None:
    """Register ``/v1<path>`` for every route registered so far (call before the fallbacks)."""
    for path, views in list(app.routes.items()):
        if is_versioned(path) or path.startswith(UNVERSIONED_ONLY) or path == "/s/{slug}":
            continue
        for method, entry in views.items():
            app.route(versioned(path), methods=[method], cors=entry.cors, content_types=entry.content_types,
                      name=f"v1_{entry.view_name}")(entry.view_function)
