"""What the docs say is what the code has. The README's settings table is what
chalicelib/settings.py reads: every setting, and no variable that does nothing; every default
the user docs state for a setting, in a table or in passing (`SPIKES_MAX_SHARE_BYTES` (50 MiB)),
is the one the code has; and every file, function, test, make target and storage key prefix the
docs name exists (a module split or a test renamed left them pointing at nothing)."""
from __future__ import annotations

import ast
import re
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from chalicelib.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
ALL_DOCS = [README] + sorted((ROOT / "docs").glob("*.md"))
# Every doc but the record of findings, whose numbers in parentheses are findings'
# (`SPIKES_RATE_EXPORTS_PER_MINUTE` (248)), not defaults.
USER_DOCS = [doc for doc in ALL_DOCS if doc.name != "security.md"]


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
    loose text. Both had happened (docs/dashboard.md, docs/agents.md's agent-tier settings, and
docs/data-model.md's `exports|<client network>`)."""
    wrong = []
    for doc in ALL_DOCS:
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
    for doc in ALL_DOCS:
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


# --- what the docs name, read against the code ---------------------------------------------
SHORT_PATHS = ("store/", "services/", "api/", "web/")  # the docs' short form of chalicelib/...
PATH_REFERENCE = re.compile(r"(?<![\w/.-])((?:chalicelib|tools|infra|bench|tests|store|services|api|web)/[\w/.-]*\w)")
DOTTED_REFERENCE = re.compile(r"^(?:chalicelib\.)?((?:store|services|api|tools|infra)\.[a-z_]+)((?:\.[A-Za-z_]\w*)*)(?:\(.*\))?$")
MODULE_REFERENCE = re.compile(r"^([a-z_]+)\.([A-Za-z_]\w*)((?:\.[A-Za-z_]\w*)*)(?:\(.*\))?$")
NOT_CODE = {"py", "md", "js", "json", "html", "css", "toml", "png", "com", "sh", "org", "local"}


@lru_cache(maxsize=None)
def _defined_in(path: Path) -> frozenset:
    """Every name a module defines or imports, its classes' methods and attributes included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                found |= {sub.id if isinstance(sub, ast.Name) else sub.attr for sub in ast.walk(target)
                          if isinstance(sub, (ast.Name, ast.Attribute))}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            found |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    return frozenset(found)


@lru_cache(maxsize=None)
def _modules_by_name() -> dict:
    found = {}
    for folder in ("chalicelib", "tools", "infra", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            found.setdefault(path.stem, []).append(path)
    return found


@lru_cache(maxsize=None)
def _dotted_strings_of_the_code() -> frozenset:
    """`usage.requeued`, `spikes.dashboard.session`: log events and browser keys, not functions."""
    found = set()
    for folder in ("chalicelib", "tools", "infra"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".js", ".html"):
                found |= set(re.findall(r"[\"']([a-z_]+\.[a-z_.]+)[\"']", path.read_text(encoding="utf-8")))
    return frozenset(found)


def _module_file(name: str):
    """`store/files`, `store.files`, `chalicelib/store/files`: the module's file, if there is one."""
    path = name.replace(".", "/")
    path = "chalicelib/" + path if path.startswith(SHORT_PATHS) else path
    candidate = ROOT / (path + ".py")
    return candidate if candidate.is_file() else None


def _missing_names(where: str, reference: str, module: Path, names: list) -> list:
    return [f"{where}: `{reference}`: {module.relative_to(ROOT).as_posix()} defines no {name}"
            for name in names[:2] if name not in _defined_in(module)]


def _stale_references(name: str, text: str) -> list:
    """Paths (`store/files.py`, `services/exports.counted_as`, `store/files.Exports.stage`) and
    module references in code spans (`store.shares.resolve`, `spike_counters.count_spike`) that name
    nothing in the code."""
    wrong = []
    for number, line in enumerate(text.splitlines(), 1):
        where = f"{name}:{number}"
        for match in PATH_REFERENCE.finditer(line):
            reference = match.group(1)
            if "<" in reference or "*" in reference:
                continue  # a pattern, not a path: `shares/<id>/`, `docs/dashboard-*.png`
            if (ROOT / ("chalicelib/" + reference if reference.startswith(SHORT_PATHS) else reference)).exists():
                continue
            module_name, _, names = reference.partition(".")
            module = _module_file(module_name)
            if module is not None and not names:
                continue  # store/spike_ids: the module
            if module is not None and names.split(".")[0] not in NOT_CODE:
                wrong += _missing_names(where, reference, module, names.split("."))
            else:
                wrong.append(f"{where}: {reference} does not exist")
        wrong += [f"{where}: python -m {module}: no such module" for module in re.findall(
            r"-m ((?:tools|bench|infra)\.[\w.]*\w)", line) if _module_file(module) is None]
        for code in re.findall(r"`([^`\s]+)`", line):
            if code in _dotted_strings_of_the_code() or code.rsplit(".", 1)[-1] in NOT_CODE:
                continue  # a log event, a browser key, a file or a host name
            match = DOTTED_REFERENCE.match(code)
            if match:
                module = _module_file(match.group(1))
                names = [name for name in match.group(2).split(".") if name]
                wrong += ([f"{where}: `{code}`: no module {match.group(1)}"] if module is None
                          else _missing_names(where, code, module, names))
                continue
            match = MODULE_REFERENCE.match(code)
            if match and match.group(1) in _modules_by_name() and not any(
                    match.group(2) in _defined_in(path) for path in _modules_by_name()[match.group(1)]):
                wrong.append(f"{where}: `{code}`: no {match.group(2)} in any {match.group(1)}.py")
    return wrong


def _tests_by_name() -> dict:
    found = {}
    for path in (ROOT / "tests").rglob("*.py"):
        for name in re.findall(r"^\s*(?:async\s+)?def (test_\w+)", path.read_text(encoding="utf-8"), re.M):
            found.setdefault(name, set()).add(path.relative_to(ROOT).as_posix())
    return found


def _stale_test_names(name: str, text: str, tests: dict) -> list:
    """Test names cited bare (`test_x`) or as `tests/test_f.py::test_x`; a bare test file name
    (`test_f.py`) must be a file of tests/."""
    files = {path.name for path in (ROOT / "tests").rglob("test_*.py")}
    wrong = []
    for number, line in enumerate(text.splitlines(), 1):
        for match in re.finditer(r"(?<![\w/.-])(?:(tests/[\w/]*?)?(test_\w+)\.py(?:::(test_\w+))?|(test_\w+))", line):
            folder, file_name, in_file, bare = match.groups()
            where = f"{name}:{number}"
            if bare and bare not in tests and bare + ".py" not in files:
                wrong.append(f"{where}: no test {bare} in tests/")
            elif file_name and not folder and file_name + ".py" not in files:
                wrong.append(f"{where}: no file {file_name}.py in tests/")
            elif in_file and f"{folder}{file_name}.py" not in tests.get(in_file, set()):
                wrong.append(f"{where}: no test {in_file} in {folder}{file_name}.py")
    return wrong


def _stale_names(name: str, text: str, tests: dict) -> list:
    return _stale_references(name, text) + _stale_test_names(name, text, tests)


def test_every_file_function_and_test_the_docs_name_exists():
    """docs/security.md's sections cite the tests that failed before each fix, docs/architecture.md
    and docs/data-model.md the modules and functions that do each thing: a module split, a
    function moved or a test renamed must take the docs along."""
    tests = _tests_by_name()
    texts = {doc.relative_to(ROOT).as_posix(): doc.read_text(encoding="utf-8") for doc in ALL_DOCS}
    assert [problem for name, text in texts.items() for problem in _stale_names(name, text, tests)] == []
    assert sum(len(re.findall(r"\btest_\w+", text)) for text in texts.values()) >= 500, \
        "the patterns no longer find the tests the docs cite"


def test_the_docs_check_finds_what_names_nothing():
    stale = ("`store/shares.resolves`, `store.shares.resolves`, `spike_counters.count_spikes`, store/nothing.py, "
             "`services/accounts.Accounts._collects`, and what does exist: `store.shares.resolve`,\n"
             "`spike_counters.count_spike`, `services/accounts.Accounts._collect`, `usage.requeued`, `spikes.sh`\n"
             "`test_no_such_test`, tests/test_readme.py::test_no_such_test, `test_nothing.py`, and\n"
             "tests/test_readme.py::test_the_docs_check_finds_what_names_nothing, `test_readme.py`\n"
             "python -m tools.devserver, python -m tools.devservers\n")
    assert _stale_names("plant.md", stale, _tests_by_name()) == [
        "plant.md:1: `store/shares.resolves`: chalicelib/store/shares.py defines no resolves",
        "plant.md:1: store/nothing.py does not exist",
        "plant.md:1: `services/accounts.Accounts._collects`: chalicelib/services/accounts.py defines no _collects",
        "plant.md:1: `store.shares.resolves`: chalicelib/store/shares.py defines no resolves",
        "plant.md:1: `spike_counters.count_spikes`: no count_spikes in any spike_counters.py",
        "plant.md:5: python -m tools.devservers: no such module",
        "plant.md:3: no test test_no_such_test in tests/",
        "plant.md:3: no test test_no_such_test in tests/test_readme.py",
        "plant.md:3: no file test_nothing.py in tests/",
    ]


def _string_heads(path: Path):
    """Each string constant of a module, and the constant head of each f-string."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
            yield node.values[0].value
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value


def _store_key_prefixes() -> dict:
    """Every key prefix the store writes (`exportslot#`, from an f-string's head too), and
    every whole key of its own (`migration#open-spikes`, `meter#held`): where each is written."""
    found = {}
    for path in sorted((ROOT / "chalicelib" / "store").glob("*.py")):
        for text in _string_heads(path):
            match = re.match(r"^[a-z][a-z-]*#(?:[a-z][a-z-]*$)?", text)
            if match:
                found.setdefault(match.group(0), path.relative_to(ROOT).as_posix())
    return found


def test_every_key_prefix_of_the_store_is_in_the_data_model():
    """docs/data-model.md is where an operator reads what an item of a table is and how it is
    read and written: a new kind of item without its row there is an item nobody can account for."""
    text = (ROOT / "docs" / "data-model.md").read_text(encoding="utf-8")
    prefixes = _store_key_prefixes()
    missing = sorted(f"{prefix} ({where})" for prefix, where in prefixes.items()
                     if f"`{prefix}" not in text and f'"{prefix}' not in text)
    assert missing == []
    assert {"exportslot#", "migration#open-spikes", "bearer#", "meter#held"} <= set(prefixes)


def _s3_key_prefixes() -> set:
    """The S3 prefixes store/files.py writes under: its constants (`exports/`) and the head of
    an f-string key (`shares/`)."""
    return {text for text in _string_heads(ROOT / "chalicelib" / "store" / "files.py")
            if re.fullmatch(r"[a-z][a-z-]*/", text)}


def test_every_item_kind_of_the_store_says_how_an_account_finds_it():
    """Account data rights (export, deletion) must find every item of an account without a Scan:
    docs/data-model.md's "Finding an account's items" has a row for each kind of item (a key
    prefix of the store, an S3 prefix), saying its path from the account and what breaks it. A
    new kind without its row is one an account's deletion would leave behind unnoticed."""
    text = (ROOT / "docs" / "data-model.md").read_text(encoding="utf-8")
    start = text.index("## Finding an account's items")
    end = text.find("\n## ", start + 1)
    section = text[start:end if end != -1 else len(text)]
    header = next(line for line in section.splitlines() if line.startswith("| "))
    assert header == "| item kind | path from the account | what breaks it |"
    rows = [line for line in section.splitlines() if line.startswith("| ") and line != header]
    assert all(line.count(" | ") == 2 for line in rows), "a row of three cells each"
    named = "\n".join(rows)
    kinds = set(_store_key_prefixes()) | _s3_key_prefixes()
    assert sorted(kind for kind in kinds if f"`{kind}" not in named) == []
    assert {"stripe-event#", "bearer#", "shares/", "exports/"} <= kinds


def test_every_make_target_the_docs_name_exists():
    targets = set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M))
    named = {(doc.name, target) for doc in ALL_DOCS
             for target in re.findall(r"`make ([a-z][\w-]*)", doc.read_text(encoding="utf-8"))}
    assert sorted((doc, target) for doc, target in named if target not in targets) == []
    assert {"dev", "test", "clean-data"} <= {target for _, target in named}


def test_docs_architecture_md_places_every_module_of_the_floors():
    """docs/architecture.md is the map a newcomer finds a module by: one split off without its
    line there (store/spike_listings.py, store/share_work.py had none) is found only by grep."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    unplaced = [f"{floor}/{path.name}" for floor in ("api", "services", "store")
                for path in sorted((ROOT / "chalicelib" / floor).glob("*.py"))
                if path.stem != "__init__" and not re.search(
                    rf"`{path.stem}(\.py)?`|`{floor}/{path.stem}[.`]|\b{path.stem}\.py\b", text)]
    assert unplaced == []


def test_docs_data_model_md_has_every_table_index_and_key_the_models_declare():
    """Each table's section names its hash (and range) key, and has a row per index naming the
    index's keys: what an operator queries by, and what a new index must be explained with."""
    from chalicelib.store.models import ALL_MODELS, LOGICAL_NAMES
    text = (ROOT / "docs" / "data-model.md").read_text(encoding="utf-8")
    sections = {match.group(1): match.group(0) for match in re.finditer(r"^## `(\w+)`\n.*?(?=^## |\Z)", text, re.M | re.S)}
    wrong = []
    for model in ALL_MODELS:
        name = LOGICAL_NAMES[model]
        section = sections.get(name)
        if section is None:
            wrong.append(f"no section ## `{name}`")
            continue
        keys = [model._hash_key_attribute()] + ([model._range_key_attribute()] if model._range_key_attribute() else [])
        wrong += [f"{name}: key {key.attr_name} not named" for key in keys if f"`{key.attr_name}`" not in section]
        for index in model._indexes.values():
            row = next((line for line in section.splitlines() if line.startswith(f"| `{index.Meta.index_name}`")), None)
            index_keys = [key["AttributeName"] for key in index._get_schema()["key_schema"]]
            if row is None:
                wrong.append(f"{name}: no row for {index.Meta.index_name}")
            else:
                wrong += [f"{name}: {index.Meta.index_name}'s row does not name {key}" for key in index_keys
                          if f"`{key}`" not in row.split(" | ")[1]]
    assert wrong == []


def test_every_variable_the_docs_name_is_read_by_the_code():
    """A setting renamed or removed must not live on in a doc or in the API reference's route
    descriptions (`SPIKES_STRIPE_AGENT_*_PRICE_ID`, a pattern, is skipped): the settings, and the
    variables the local tools read."""
    from chalicelib.settings import SSM_PATH_VARIABLE
    read = set(_defaults()) | {SSM_PATH_VARIABLE}
    for folder in ("tools", "bench", "infra"):
        for path in (ROOT / folder).rglob("*.py"):
            read |= set(re.findall(r"SPIKES_[A-Z0-9_]*[A-Z0-9]", path.read_text(encoding="utf-8")))
    described = ROOT / "chalicelib" / "api" / "openapi.py"  # the routes' descriptions at /docs
    named = {(doc.name, name) for doc in ALL_DOCS + [described]
             for name in re.findall(r"SPIKES_[A-Z0-9_]*[A-Z0-9](?![A-Z0-9_*])", doc.read_text(encoding="utf-8"))}
    assert sorted((doc, name) for doc, name in named if name not in read) == []


def test_every_finding_the_docs_cite_is_a_section_of_docs_security_md():
    """`docs/security.md, 248`, `(docs/security.md 171)`, `finding 240`: the reader goes there for
    why, so the number must be a section (numbers are reserved per helper and leave gaps)."""
    sections = {int(number) for number in re.findall(
        r"^## (\d+)\.", (ROOT / "docs" / "security.md").read_text(encoding="utf-8"), re.M)}
    cited = [(doc.name, match.group(0), int(number)) for doc in ALL_DOCS
             for match in re.finditer(r"(?:security\.md,?|\bsecurity|\bfindings?)\s+((?:\d{1,3}(?:,\s*| and ))*\d{1,3})\b",
                                      doc.read_text(encoding="utf-8"))
             for number in re.findall(r"\d+", match.group(1))]
    assert [(doc, text) for doc, text, number in cited if number not in sections] == []
    assert len(cited) >= 150, "the pattern no longer finds the findings the docs cite"


def _github_anchor(heading: str) -> str:
    """The id GitHub gives a heading: lowercase, every punctuation mark but hyphens dropped, spaces
    to hyphens (`## 309. Listing one's shares ...` is `#309-listing-ones-shares-...`)."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _heading_anchors(text: str) -> dict:
    """Each heading's anchor to its text; a repeated one gets `-1`, `-2` as on GitHub. Lines of a
    fenced block are not headings."""
    anchors: dict = {}
    for heading in re.findall(r"^#{1,6} (.+)$", re.sub(r"^```.*?^```", "", text, flags=re.M | re.S), re.M):
        base = anchor = _github_anchor(heading)
        repeat = 0
        while anchor in anchors:
            repeat += 1
            anchor = f"{base}-{repeat}"
        anchors[anchor] = heading
    return anchors


def _finding_index_problems(text: str) -> list:
    """What the index of findings of docs/security.md gets wrong: a `## <n>.` finding not listed,
    one listed twice, a link whose anchor is not its finding's heading, a finding it says changed
    another that is no section, and any link of the doc to an anchor no heading has."""
    anchors = _heading_anchors(text)
    findings = {int(heading.split(".")[0]): anchor for anchor, heading in anchors.items()
                if re.match(r"\d+\. ", heading)}
    heading = "\n# Index of findings\n"
    index = text.split(heading, 1)[1].split("\n# ", 1)[0] if heading in text else ""
    links = [(int(number), anchor) for number, anchor in re.findall(r"^- \[(\d+)\]\(#([^)\s]+)\)", index, re.M)]
    listed = [number for number, _ in links]
    later = [int(number) for match in re.findall(r"(?:changed|extended|completed) by ((?:\d+(?:, | and )?)+)", index)
             for number in re.findall(r"\d+", match)]
    return ([f"not indexed: {number} (add `- [{number}](#{findings[number]}) <title>` under its area)"
             for number in sorted(set(findings) - set(listed))]
            + [f"indexed twice: {number}" for number in sorted({n for n in listed if listed.count(n) > 1})]
            + [f"wrong anchor: {number} #{anchor}" for number, anchor in links if findings.get(number) != anchor]
            + [f"no such finding: {number}" for number in later if number not in findings]
            + [f"no such heading: #{anchor}" for anchor in re.findall(r"\]\(#([^)\s]+)\)", text)
               if anchor not in anchors])


def test_every_finding_of_docs_security_md_is_in_its_index():
    """docs/security.md's findings are in number order; a reader asking what protects
    sign-in or limits exports reads its index by area, so every finding must be listed there once,
    each link must land on its finding, and a new finding is indexed when it is written."""
    assert _github_anchor("309. Listing one's shares is limited per account") == \
        "309-listing-ones-shares-is-limited-per-account"
    assert _github_anchor("19. Reviewers' addresses need `spikes:read`") == "19-reviewers-addresses-need-spikesread"
    sample = ("# Findings\n\nSee [the index](#index-of-finding).\n\n# Index of findings\n\n"
              "- [1](#1-a-b) A, b (changed by 2 and 9)\n- [2](#2-c) C\n- [2](#2-c) C\n- [3](#3-d) D\n"
              "- [4](#1-a-b) E\n\n# The review\n\n## 1. A, b\n\n## 2. C!\n\n## 4. E\n\n## 5. F\n")
    assert _finding_index_problems(sample) == [
        "not indexed: 5 (add `- [5](#5-f) <title>` under its area)", "indexed twice: 2",
        "wrong anchor: 3 #3-d", "wrong anchor: 4 #1-a-b", "no such finding: 9",
        "no such heading: #index-of-finding", "no such heading: #3-d"]
    text = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    assert _finding_index_problems(text) == []
    assert len(re.findall(r"^## \d+\. ", text, re.M)) >= 200, "the pattern no longer finds the findings"


def _findings_out_of_order(text: str) -> list:
    """The `## <n>.` findings that come after a higher-numbered one."""
    numbers = [int(number) for number in re.findall(r"^## (\d+)\. ", text, re.M)]
    return [f"{number} after {highest}" for highest, number in
            ((max(numbers[:at]), number) for at, number in enumerate(numbers) if at)
            if number < highest]


def test_the_findings_of_docs_security_md_are_in_number_order():
    """Docs and code cite findings by number ("docs/security.md 171"); a reader finds one by
    scrolling, so a finding added by another helper goes where its number belongs, not at the end."""
    assert _findings_out_of_order("## 1. A\n\n## 3. B\n\n## 2. C\n\n## 4. D\n") == ["2 after 3"]
    text = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    assert _findings_out_of_order(text) == []


# --- the routes the docs name -----------------------------------------------------------------

# Paths the docs name that are not this server's: Stripe's API, upstream spikes.sh's hosted
# routes (docs/clients.md says they are not served here) and the bench's bare Chalice app.
NOT_OURS = {"/v2/core/events/{}", "/checkout/sessions/{}", "/checkout/sessions/{}/expire", "/billing/meter_events",
            "/me/projects", "/projects", "/_bench/bare"}
_PATH_SEGMENT = r"(?:\{[^}\n]*\}|<[^>\n]*>|[A-Za-z0-9_\-.~…]+)+"
_NAMED_ROUTE = re.compile(rf"\b(GET|POST|PUT|PATCH|DELETE|HEAD)\s+`?((?:/{_PATH_SEGMENT})+/?)")


def _segments(path: str) -> tuple:
    """`/shares/{id or slug}/complete`, `/shares/<id>/complete`, `/v1/shares/sh_…/complete`: a
    placeholder (or an elided id) is any value; `/v1` is the same route."""
    segments = tuple("{}" if re.search(r"[{<…]", part) else part for part in path.strip("/").split("/") if part)
    return segments[1:] if segments[:1] == ("v1",) else segments


def _unserved(text: str, routes: dict) -> list:
    """(method, path) the text names that no route of the app answers; `/s/…` pages are not
    checked (one route per depth), and a path ending in `/…` stands for every path under it."""
    found = []
    for method, path in _NAMED_ROUTE.findall(text):
        segments, under = _segments(path.rstrip(".")), path.rstrip(".").endswith("/…")
        if segments[:1] == ("s",) or "/" + "/".join(segments) in NOT_OURS:
            continue
        if under:
            segments = segments[:-1]
        served = any((len(route) == len(segments) or (under and len(route) > len(segments)))
                     and all(ours in ("{}", theirs) for ours, theirs in zip(route, segments))
                     and (method in methods or (method == "HEAD" and "GET" in methods))
                     for route, methods in routes.items())
        if not served:
            found.append((method, path))
    return found


def test_every_route_the_docs_name_is_one_the_server_answers():
    """A reader copies `POST /shares/{id}/complete` from the docs into curl: a route renamed, a
    method changed (`GET /auth/api-key` for `GET /auth/api-keys`) or one never served must not
    stay in them. Checked against the app's routes, placeholders as any value."""
    from app import app
    from chalicelib.api import fallback
    routes: dict = {}
    for path, views in app.routes.items():
        for method, view in views.items():
            if not fallback.is_fallback(view):
                routes.setdefault(_segments(path), set()).add(method)
    assert _unserved("`GET /auth/api-key`, `DELETE /spikes`, `POST /share/{id}/complete`", routes) == [
        ("GET", "/auth/api-key"), ("DELETE", "/spikes"), ("POST", "/share/{id}/complete")]
    assert _unserved("GET /auth/api-keys, HEAD /widget.js, `POST /v1/shares/sh_…/complete`, "
                     "POST /shares/{id}/webhook/…", routes) == []
    wrong = [f"{doc.name}: {method} {path}" for doc in ALL_DOCS
             for method, path in _unserved(doc.read_text(encoding="utf-8"), routes)]
    assert wrong == []


# --- the files the docs link to ---------------------------------------------------------------

# `[docs/shares.md](docs/shares.md)`, `![Dashboard](docs/dashboard-phone.png)` and a bare
# docs/getting-started.md or `.ci/run` in the text: what a reader opens next.
_LINK = re.compile(r"\]\((?!https?:|mailto:|#)([^)\s#]+)")
_NAMED_FILE = re.compile(r"(?<![\w/.<-])((?:docs/[\w.-]+\.(?:md|png))|\.ci/run|\.chalice/config\.json)\b")


def _missing_links(doc: Path, text: str) -> list:
    linked = [(target, (doc.parent / target).resolve()) for target in _LINK.findall(text)]
    named = [(name, ROOT / name) for name in _NAMED_FILE.findall(text)]
    return [f"{doc.name}: {target}" for target, path in linked + named if not path.exists()]


def test_every_file_a_doc_links_to_or_names_exists():
    """PATH_REFERENCE reads the code's paths; a link to a doc renamed, moved or never written
    (`[docs/deploy.md](docs/deploy.md)`, the dashboard's screenshots) is read here."""
    assert _missing_links(ROOT / "docs" / "x.md", "[a](shares.md) [b](nothing.md) docs/nothing.md [c](#x)") == [
        "x.md: nothing.md", "x.md: docs/nothing.md"]
    assert [problem for doc in ALL_DOCS for problem in _missing_links(doc, doc.read_text(encoding="utf-8"))] == []
    assert sum(len(_LINK.findall(doc.read_text(encoding="utf-8"))) for doc in ALL_DOCS) >= 10, \
        "the pattern no longer finds the docs' links"


def test_every_variable_a_stage_sets_is_a_setting_and_docs_deploy_md_names_them():
    """settings.py ignores a variable it does not know: one misspelt in .chalice/config.json or in
    the deployed functions' environment (infra/stack.py) would leave its setting at the default
    without a word. docs/deploy.md names what the functions get (it left out
    `SPIKES_MAIL_CONFIGURATION_SET`); the agent tier's two price ids are its `*` pattern."""
    import json
    from chalicelib.settings import SSM_PATH_VARIABLE
    from infra.stack import function_environment
    settings = set(_defaults()) | {SSM_PATH_VARIABLE}
    stages = json.loads((ROOT / ".chalice" / "config.json").read_text(encoding="utf-8"))["stages"]
    local = {name for stage in stages.values() for name in stage.get("environment_variables", {})}
    deployed = set(function_environment("prod"))
    assert sorted((local | deployed) - settings) == []
    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    sentence = text[text.index("The functions get "):].split(";", 1)[0]
    named = set(re.findall(r"`(SPIKES_[A-Z0-9_*]+)", sentence))
    patterns = {name for name in named if "*" in name}
    covered = {name for name in deployed if name in named or any(re.fullmatch(p.replace("*", "[A-Z]+"), name)
                                                                  for p in patterns)}
    assert sorted(deployed - covered) == [] and sorted(named - deployed - patterns) == []


def _unread_make_variables(text: str, makefile: str) -> list:
    """(target, VAR) of each `make <target> VAR=...` in the text that neither the Makefile reads
    nor the module its target runs (`-m tools.devserver` reads PORT from the environment, where
    make puts a command line's variables)."""
    recipes = {match.group(1): match.group(2) for match in re.finditer(r"^([a-z][\w-]*):.*\n((?:\t.*\n)*)", makefile, re.M)}
    unread = []
    for target, rest in re.findall(r"\bmake ([a-z][\w-]*)((?: +[A-Z][A-Z0-9_]*=[^`#\n]*)+)", text):
        for name in re.findall(r"(?:^|\s)([A-Z][A-Z0-9_]*)=", rest):
            if re.search(rf"\$\((?:value |call quoted,|call deploy_option,)?{name}[),]|origin {name}\b", makefile):
                continue
            modules = [ROOT / (module.replace(".", "/") + ".py") for module in re.findall(r"-m ([\w.]+)", recipes.get(target, ""))]
            if not any(path.is_file() and re.search(rf"[\"']{name}[\"']", path.read_text(encoding="utf-8")) for path in modules):
                unread.append((target, name))
    return unread


def test_every_make_variable_the_docs_pass_is_read():
    """`make dev PORT=8001` and `make smoke URL=... TOKEN=...` work through the environment, not
    the Makefile: a variable nothing reads would be dropped without a word, the stage served on
    8000 or smoked without the token."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert _unread_make_variables("`make dev PORT=8001 DATA_DIR=x`, `make smoke URL=u TOKEN=t`, "
                                  "`make dev PROT=8001`, `make test PYTEST_ARGS=\"-k x\"`", makefile) == [("dev", "PROT")]
    unread = {(doc.name, target, name) for doc in ALL_DOCS
              for target, name in _unread_make_variables(doc.read_text(encoding="utf-8"), makefile)}
    assert sorted(unread) == []
    given = sum(len(re.findall(r"\bmake [a-z][\w-]* +[A-Z][A-Z0-9_]*=", doc.read_text(encoding="utf-8"))) for doc in ALL_DOCS)
    assert given >= 20, "the pattern no longer finds the variables the docs pass to make"
