"""The README's settings table is what chalicelib/settings.py reads: every setting, and no
variable that does nothing; and every default the user docs state for a setting, in a table or
in passing (`SPIKES_MAX_SHARE_BYTES` (50 MiB)), is the one the code has."""
from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

from chalicelib.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
USER_DOCS = [README] + [ROOT / "docs" / f"{name}.md" for name in (
    "getting-started", "api-notes", "clients", "agents", "shares", "webhooks", "billing", "dashboard")]


def _settings_table_variables() -> set:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Settings", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split(" | ")[0])}


def _defaults() -> dict:
    return {field.validation_alias if isinstance(field.validation_alias, str) else f"SPIKES_{name.upper()}":
            field.default for name, field in Settings.model_fields.items()}


def test_the_settings_table_lists_every_setting_and_nothing_else():
    from chalicelib.settings import SSM_PATH_VARIABLE
    expected = set(_defaults()) | {SSM_PATH_VARIABLE}  # where settings.py reads the secrets from
    listed = _settings_table_variables()
    assert sorted(listed - expected) == [], "listed in the README but not read by chalicelib/settings.py"
    assert sorted(expected - listed) == [], "read by chalicelib/settings.py but missing from the README"


# A number stated with a unit, converted to the unit the setting's name ends in.
UNITS = {"KiB": 1024, "MiB": 1024 ** 2, "s": 1, "seconds": 1, "minutes": 60, "hours": 3600, "h": 3600,
         "days": 86400}
SETTING_UNITS = {"_SECONDS": 1, "_HOURS": 3600, "_DAYS": 86400, "_BYTES": 1}
NUMBER = r"(\d[\d,]*(?:\.\d+)?)"
UNIT = r"(?:\s*(KiB|MiB|seconds|minutes|hours|days|s|h)\b)?"
MENTIONS = (  # (pattern, group of the setting, group of the number, group of the unit)
    # `SPIKES_X` (10), `SPIKES_X` (4 MiB by default), `SPIKES_X` per client IP (default 5; ...
    (re.compile(r"`(SPIKES_[A-Z0-9_]+)`[^`()\n]{0,60}?\s*\((?:default\s+)?`?" + NUMBER + "`?" + UNIT), 1, 2, 3),
    # every 2 s (`SPIKES_X`), at most once per 5 minutes (`SPIKES_X`)
    (re.compile(NUMBER + r"\s*(KiB|MiB|seconds|minutes|hours|days|s|h)?\s*\(`(SPIKES_[A-Z0-9_]+)`[,)]"), 3, 1, 2),
    # (`SPIKES_X`, default `604800`, ...)
    (re.compile(r"`(SPIKES_[A-Z0-9_]+)`,\s*default\s*`" + NUMBER + "`"), 1, 2, None),
)


def _same(stated: str, default) -> bool:
    if isinstance(default, (int, float, Decimal)) and not isinstance(default, bool):
        return Decimal(stated.replace(",", "")) == Decimal(str(default))
    return stated == default


def _documented_defaults():
    """(where, setting, what the doc says, the code's default) for each default a user doc states."""
    defaults = _defaults()
    for doc in USER_DOCS:
        text = doc.read_text(encoding="utf-8")
        for line in text.splitlines():  # tables: | `SPIKES_A` / `SPIKES_B` | `1` / `2` | ...
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not line.lstrip().startswith("| `") or len(cells) < 2:
                continue
            names = [name for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0]) if name in defaults]
            stated = re.findall(r"`([^`]+)`", cells[1])
            if names and len(stated) == len(names):
                yield from ((f"{doc.name} table", name, value, defaults[name]) for name, value in zip(names, stated))
        for pattern, name_at, number_at, unit_at in MENTIONS:
            for match in pattern.finditer(text):
                name = match.group(name_at)
                if name not in defaults:
                    continue
                value = Decimal(match.group(number_at).replace(",", ""))
                unit = match.group(unit_at) if unit_at else None
                if unit:
                    base = next((scale for suffix, scale in SETTING_UNITS.items() if name.endswith(suffix)), 1)
                    value = value * UNITS[unit] / base
                yield f"{doc.name}: {match.group(0)!r}", name, str(value), defaults[name]


def test_every_default_the_user_docs_state_is_the_code_default():
    checked = [(where, name, stated, default) for where, name, stated, default in _documented_defaults()
               if default is not None and not isinstance(default, bool) and type(default).__name__ != "SecretStr"]
    wrong = [f"{where}: {name} is {default!r} in chalicelib/settings.py, the doc says {stated}"
             for where, name, stated, default in checked if not _same(stated, default)]
    assert wrong == []
    assert len(checked) >= 60, "the patterns no longer find the defaults the docs state"


def test_every_table_row_of_the_user_docs_has_its_header_s_cells():
    """GitHub splits a table row at every `|`, one inside a code span too (`csv|jsonl` must be
    written `csv\\|jsonl`), and a paragraph inside a table ends it: the rows after it render as
    loose text. Both had happened (docs/dashboard.md, docs/agents.md's agent-tier settings)."""
    wrong = []
    for doc in USER_DOCS:
        header = None
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            row = line.strip()
            if not row.startswith("|"):
                header = None
                continue
            cells = len(re.split(r"(?<!\\)\|", row.strip("|")))
            if header is None:
                header = cells
                if not re.match(r"^\|[\s:|-]+\|$", _next_line(doc, number)):
                    wrong.append(f"{doc.name}:{number}: a table row without a header above it")
            elif cells != header:
                wrong.append(f"{doc.name}:{number}: {cells} cells under a header of {header}")
    assert wrong == []


def _next_line(doc: Path, number: int) -> str:
    lines = doc.read_text(encoding="utf-8").splitlines()
    return lines[number].strip() if number < len(lines) else ""


# "401 `AUTH_FAILED`", "`429 RATE_LIMIT`", "409 EXPORT_TOO_LARGE": a status with the code it comes with.
STATUS_AND_CODE = (re.compile(r"\b([1-5]\d\d)\s+`([A-Z][A-Z_]{3,})`"),
                   re.compile(r"`([1-5]\d\d)\s+([A-Z][A-Z_]{3,})[`\s]"),
                   re.compile(r"\b([1-5]\d\d)\s+\*?\*?([A-Z][A-Z_]{3,})\b"))


def test_every_status_and_error_code_the_user_docs_pair_is_one_the_server_answers():
    from chalicelib.api import openapi
    answered = set(openapi._error_codes())  # (code, status) of every error class
    codes = {code for code, _ in answered}
    found, wrong = 0, []
    for doc in USER_DOCS:
        text = doc.read_text(encoding="utf-8")
        for pattern in STATUS_AND_CODE:
            for match in pattern.finditer(text):
                status, code = int(match.group(1)), match.group(2)
                if code not in codes:
                    continue  # a word in capitals after a number, not an error code
                found += 1
                if (code, status) not in answered:
                    wrong.append(f"{doc.name}: {match.group(0)!r}, but {code} is answered with "
                                 f"{sorted(s for c, s in answered if c == code)}")
    assert wrong == []
    assert found >= 100, "the patterns no longer find the status codes the docs state"


def _scope_table() -> dict:
    """docs/agents.md's scope table: scope -> the (method, path) it allows, path variables as {}.
    `PATCH`/`DELETE /x` is both; "`GET /x` and its `deliveries`" adds /x/deliveries; a path
    ending in … stands for every path under it."""
    text = (ROOT / "docs" / "agents.md").read_text(encoding="utf-8")

    def template(path: str) -> str:
        return re.sub(r"\{[^}]*\}", "{}", path).split(" ")[0]
    table = {}
    for scope, allows in re.findall(r"^\| `([a-z]+:[a-z]+)` \| (.*) \|$", text, re.M):
        routes = {(method, template(path)) for methods, path in re.findall(r"((?:`[A-Z]+`/)*`[A-Z]+) (/[^`]*)`", allows)
                  for method in re.findall(r"[A-Z]+", methods)}
        routes |= {(method, f"{template(path)}/{below}")
                   for method, path, below in re.findall(r"`([A-Z]+) (/[^`]*)` and its `([a-z]+)`", allows)}
        table[scope] = routes
    return table


def test_docs_agents_md_scope_table_is_what_each_route_requires():
    """The scope table is what an agent reads to choose a key's scopes; tests/test_apikeys.py's
    ROUTES is what each route is tested to require. They must say the same."""
    from tests.test_apikeys import CONCRETE, ROUTES, SESSION_ONLY
    table = _scope_table()
    assert set(table) == {"spikes:read", "spikes:write", "shares:read", "shares:write", "usage:read",
                          "keys:manage"}
    tested = set()
    for method, path, scope in ROUTES:
        path = path.split("?")[0]
        path = path[len("/v1"):] if path.startswith("/v1/") else path
        for concrete in CONCRETE:
            path = path.replace(concrete, "{}")
        if scope != SESSION_ONLY:
            tested.add((method, path, scope))
    missing = [(method, path, scope) for method, path, scope in tested
               if (method, path) not in table[scope] and not any(
                   m == method and p.endswith("…") and path.startswith(p[:-1]) for m, p in table[scope])]
    assert missing == [], "routes the scope table of docs/agents.md does not list under the scope they require"
    listed = {(method, path, scope) for scope, routes in table.items() for method, path in routes
              if not path.endswith("…")}
    assert listed - tested == set(), "the scope table of docs/agents.md lists these under a scope they do not require"
