"""Modules loaded by the first route that uses them.

Every cold start of the API function runs ``import app``, which registers all routes. What the
routes need (PynamoDB, pydantic and e-mail validation, structlog, Stripe, argon2, multipart
parsing, HTML rewriting...) would double that import; instead the HTTP layer names the
modules its routes call with ``lazy_import`` and each loads on first use, so a request pays
only for what its route needs (docs/deploy.md, "Cold start"). tools/import_graph.py reads
``lazy_import("...")`` as an import: the layer rules hold for these too.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands for a module; the first attribute read imports it (thread-safe, as ``import``)."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_name", name)

    def _module(self) -> ModuleType:
        return importlib.import_module(self._name)  # a dict look-up once loaded

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._module(), attribute)

    def __setattr__(self, attribute: str, value: Any) -> None:
        setattr(self._module(), attribute, value)  # patching through it patches the module

    def __delattr__(self, attribute: str) -> None:
        delattr(self._module(), attribute)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy_import(name: str) -> Any:
    """``spikes = lazy_import("chalicelib.services.spikes")``: used like ``import``, loaded on
    first use."""
    return LazyModule(name)
