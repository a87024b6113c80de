"""The floors of chalicelib hold (docs/architecture.md): read from the imports of the source."""
from __future__ import annotations

import ast

from tools import import_graph
from tools.import_graph import ROOT, find_cycle, violations

# Modules allowed past ~300 lines, and why (docs/architecture.md repeats the reasons).
LONG_MODULES = {
    "chalicelib/api/openapi.py": "one declarative table describing every route for GET /openapi.json",
    "chalicelib/api/responses.py": "every JSON answer's model in one place, read by the views and the document",
    "chalicelib/store/models.py": "every table's model and indexes in one place, which the "
                                  "deploy template and docs/data-model.md are read against",
}
MAX_LINES = 320


def test_no_upward_import_no_cycle_and_no_chalice_below_the_api():
    assert violations() == []


def test_the_rules_catch_what_they_are_for():
    internal = {
        "chalicelib.store.shares": {"chalicelib.services.shares"},  # runs up
        "chalicelib.services.shares": {"chalicelib.services.spikes"},
        "chalicelib.services.spikes": {"chalicelib.services.shares"},  # a cycle
        "chalicelib.services.identity": set(),
    }
    external = {"chalicelib.services.identity": {"chalice"}, "chalicelib.services.shares": {"pynamodb"},
                "chalicelib.store.shares": {"pynamodb"}}
    problems = violations(internal, external)
    assert "upward import: chalicelib.store.shares (store) -> chalicelib.services.shares (services)" in problems
    assert "chalicelib.services.identity (services) imports chalice" in problems
    assert "chalicelib.services.shares (services) imports pynamodb" in problems
    assert not any(problem.startswith("chalicelib.store.shares (store) imports") for problem in problems)
    assert any(problem.startswith("cycle: ") for problem in problems)
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_every_module_has_a_floor():
    for module in import_graph.module_files():
        assert import_graph.floor_of(module) in import_graph.FLOORS


def test_imports_inside_functions_count_too():
    internal, _ = import_graph.graph()
    # deps builds the mailer lazily, inside a function: still an edge of the graph.
    assert "chalicelib.services.mailer" in internal["chalicelib.deps"]


def test_lazy_imports_count_too():
    internal, external = import_graph.graph()
    # The HTTP layer names the services its routes call with lazy_import (chalicelib/lazy.py).
    assert "chalicelib.services.spikes" in internal["chalicelib.api.spikes"]
    assert "chalicelib.services.stripe_events" in internal["chalicelib.api.webhooks"]
    import ast
    call = ast.parse('shares = lazy_import("chalicelib.services.shares")').body[0].value
    assert import_graph._imported(call, "chalicelib.store.shares", False) == ["chalicelib.services.shares"]


def test_a_lazy_module_is_loaded_on_first_use_and_patches_through():
    import sys

    from chalicelib.lazy import lazy_import
    sys.modules.pop("colorsys", None)
    colors = lazy_import("colorsys")
    assert "colorsys" not in sys.modules
    assert colors.rgb_to_hsv(1.0, 0.0, 0.0) == (0.0, 1.0, 1.0)
    assert "colorsys" in sys.modules
    colors.ONE_THIRD = 0.5
    assert sys.modules["colorsys"].ONE_THIRD == 0.5
    sys.modules.pop("colorsys")


def test_no_module_is_long_without_a_reason():
    long = {}
    for path in sorted((ROOT / "chalicelib").rglob("*.py")):
        name = str(path.relative_to(ROOT))
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES and name not in LONG_MODULES:
            long[name] = lines
    assert long == {}


def test_every_table_is_declared_once_for_code_setup_and_template():
    from chalicelib.store.models import ALL_MODELS, LOGICAL_NAMES
    from chalicelib.store.tables import TABLES
    assert sorted(LOGICAL_NAMES[model] for model in ALL_MODELS) == sorted(TABLES)


# What only the store writes: a condition, update actions, a transaction of its own.
STORE_ONLY_KEYWORDS = {"condition", "filter_condition", "actions"}
STORE_ONLY_CALLS = {"does_not_exist", "exists"}


def store_work_in(source: str) -> list:
    """Conditions, update actions and transaction runs written in ``source``."""
    import ast
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        found += [f"{keyword.arg}=" for keyword in node.keywords if keyword.arg in STORE_ONLY_KEYWORDS]
        if isinstance(node.func, ast.Attribute) and node.func.attr in STORE_ONLY_CALLS:
            found.append(f".{node.func.attr}()")
        if isinstance(node.func, ast.Attribute) and node.func.attr == "run" and \
                isinstance(node.func.value, ast.Name) and node.func.value.id == "transactions":
            found.append("transactions.run")
    return found


def test_services_build_no_condition_update_or_transaction():
    assert store_work_in("user.update(actions=[User.tier.set('pro')], condition=User.user_id.exists())") == \
        ["actions=", "condition=", ".exists()"]
    assert store_work_in("transactions.run(write)") == ["transactions.run"]
    found = {}
    for path in sorted((ROOT / "chalicelib" / "services").glob("*.py")):
        work = store_work_in(path.read_text(encoding="utf-8"))
        if work:
            found[path.name] = work
    assert found == {}


# Wall time is read in chalicelib/clock.py alone, which tests and a replay fix (``clock.use``):
# a module reading the machine's clock stamps and schedules by another time than the rest.
# Durations (time.monotonic, perf_counter) and pauses (time.sleep) are not moments: allowed.
WALL_TIME_READS = {"time.time", "time.time_ns", "time.gmtime", "time.localtime", "time.ctime",
                   "datetime.now", "datetime.utcnow", "datetime.today", "date.today",
                   "datetime.datetime.now", "datetime.datetime.utcnow", "datetime.date.today"}


def wall_time_reads_in(source: str) -> list:
    """Reads of the wall clock in ``source``, called or passed on (``now_fn=time.time``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and ast.unparse(node) in WALL_TIME_READS:
            found.append(ast.unparse(node))
        elif isinstance(node, ast.ImportFrom) and node.module in ("time", "datetime"):
            found += [f"from {node.module} import {alias.name}" for alias in node.names
                      if f"{node.module}.{alias.name}" in WALL_TIME_READS]
    return found


def test_only_the_clock_reads_wall_time():
    assert wall_time_reads_in("def run(now_fn=time.time):\n    return datetime.now(timezone.utc)") == \
        ["time.time", "datetime.now"]
    assert wall_time_reads_in("from time import time\nstarted = time.monotonic(); time.sleep(1)") == \
        ["from time import time"]
    found = {}
    for path in sorted((ROOT / "chalicelib").rglob("*.py")):
        reads = wall_time_reads_in(path.read_text(encoding="utf-8"))
        if reads:
            found[path.relative_to(ROOT).as_posix()] = reads
    assert set(found) == {"chalicelib/clock.py"}, found


# --- room for the roadmap (docs/architecture.md) ----------------------------------------------
# An MCP endpoint calls the services, not the routes: past the one scope a route names
# (identity.require_user / principal.require(scope)), who may read or change what is a service's
# decision, never made again in a blueprint.
DECISIONS_OF_SERVICES = {"require_feedback_access", "shows_reviewer_emails", "may_act_as_owner", "owns",
                         "owned_share", "accounts_of", "joined_by_claim", "allows", "is_private"}
OWNER_NAMES = {"owner_id", "user_id"}


def _owner_like(node) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr in OWNER_NAMES) or \
        (isinstance(node, ast.Name) and node.id in OWNER_NAMES)


def owner_comparisons_in(source: str) -> list:
    """Two accounts compared (``share.owner_id == user.user_id``): an ownership decision."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops) \
                and sum(_owner_like(operand) for operand in [node.left, *node.comparators]) >= 2:
            found.append(ast.unparse(node))
    return found


def authorization_in(source: str) -> list:
    """Calls that decide who may act, and literal scopes required past the route's own."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
        if name in DECISIONS_OF_SERVICES:
            found.append(f"{name}()")
        if name == "require" and node.args and isinstance(node.args[0], ast.Constant):
            found.append(f"require({node.args[0].value!r})")
    return found + owner_comparisons_in(source)


def test_blueprints_leave_authorization_to_the_services():
    assert authorization_in('principal.require("spikes:read")\nspikes.shows_reviewer_emails(p, o)') == \
        ["require('spikes:read')", "shows_reviewer_emails()"]
    assert authorization_in("if share.owner_id != principal.user_id: raise NotFound()") == \
        ["share.owner_id != principal.user_id"]
    assert authorization_in('identity.require_user(principal, "shares:read")\nprincipal.require(scope)') == []
    found = {}
    for path in sorted((ROOT / "chalicelib" / "api").glob("*.py")):
        decisions = authorization_in(path.read_text(encoding="utf-8"))
        if decisions:
            found[path.name] = decisions
    assert found == {}


# Whether an account acts as an item's owner is asked of services/ownership.py alone (Teams will
# change that one module). These compare two accounts for something else, and say what.
NOT_OWNERSHIP_DECISIONS = {
    ("claims.py", "owner.user_id == user.user_id"):
        "the presented key was moved to the caller already: a claim retried, not a permission",
    ("identity.py", "self.key.user_id != self.user_id"):
        "which key-only account a key was made for, once a claim moved it (Principal.claimed_from)",
    ("key_places.py", "keys[key_id].user_id != user_id"):
        "the account's key-cap bookkeeping: a key a claim moved away holds no place any more",
    ("outbound_webhooks.py", "caller.user_id == share.owner_id"):
        "whose tier counts is the share owner's: the caller's account, already read, saves a read",
}


def test_ownership_is_decided_in_one_module():
    assert owner_comparisons_in("if spike.owner_id == principal.user_id: allowed = True") == \
        ["spike.owner_id == principal.user_id"]
    found = set()
    for path in sorted((ROOT / "chalicelib" / "services").glob("*.py")):
        if path.name != "ownership.py":
            found |= {(path.name, comparison) for comparison in owner_comparisons_in(path.read_text(encoding="utf-8"))}
    assert found - set(NOT_OWNERSHIP_DECISIONS) == set()
    assert set(NOT_OWNERSHIP_DECISIONS) - found == set()  # a line listed here that is gone: drop it


def found_by_owner_section() -> str:
    text = (ROOT / "docs" / "data-model.md").read_text(encoding="utf-8")
    start = text.index("## Finding an account's items")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else len(text)]


def test_every_table_is_found_by_owner_without_a_scan():
    """Account data rights (export, deletion) read an account's items by its id: a table is keyed
    by the account (users) or has an ``owner_index``, and docs/data-model.md says for each table
    how its items are found and what is not."""
    from chalicelib.store.models import ALL_MODELS, LOGICAL_NAMES, User
    section = found_by_owner_section()
    for model in ALL_MODELS:
        name = LOGICAL_NAMES[model]
        assert f"| `{name}` " in section, f"docs/data-model.md, Finding an account's items: no row for the {name} table"
        indexes = {index.Meta.index_name for index in model._indexes.values()}
        assert model is User or "owner_index" in indexes, f"{name}: no owner_index (or key the account)"


# Work a job owes, as members of one ledger item (ADD/DELETE of a string set): every writer of
# the work contends on that item, DynamoDB's 400 KB item limit bounds it for the whole
# installation, and two regions writing it at once keep one side's members (docs/architecture.md,
# "Room for the roadmap"). Work goes in store/pending_queue.py (one item per unit); the only
# set access left is a queue moving what an earlier version listed in its set, and nothing adds.
ONE_ITEM_WORK_SETS = {"self.legacy_item"}


def work_sets_in(source: str) -> set:
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr in ("remember", "forget", "members") and ast.unparse(node.func.value) == "ledger":
            found.add(ast.unparse(node.args[0]) if node.args else "?")
    return found


# The same, written as an update action rather than through ledger's helpers: an ADD or DELETE of
# a set attribute of any model (``ApiKey.made_keys.add({...})``, in a transaction or not). The
# helpers' check above names ledger's functions and missed this form. Each one here is allowed
# for a reason; a new one needs its own (or an item per member, as store/pending_queue.py does).
SET_MEMBER_WRITES = {
    ("chalicelib/store/apikeys.py", "ApiKey.made_keys.add"):
        "the keys a key made, on that key's own item: the revocation writes the same item, which is "
        "what makes the set final once the key is revoked (docs/security.md, 35); one key's "
        "making, rate limited, not the installation's work",
    ("chalicelib/store/older_made_keys.py", "ApiKey.made_keys.add"):
        "an older key's children found on the owner index (made before made_keys was kept), on that "
        "key's own item once it is revoked, so a revocation's next request goes on from them "
        "(docs/security.md, 348); what one key made, not the installation's work",
    ("chalicelib/store/ledger.py", "LedgerItem.members.delete"): "empties an earlier version's work sets",
    ("chalicelib/store/claim_marks.py", "User.claims_moving.add"):
        "the claims moving into one person's account, on that person's item, added by the claim's "
        "marking (once a claim, a signed-in person presenting a key of each account) and removed when "
        "it completes (within about 20 minutes, docs/security.md 333): one person's claims in "
        "progress, not the installation's work (docs/security.md, 312)",
    ("chalicelib/store/claim_marks.py", "User.claims_moving.delete"): "a claim completed: its id leaves the set",
}


def set_member_writes_in(source: str) -> list:
    """ADD/DELETE update actions on a set attribute of a model, whatever their argument's form."""
    from pynamodb.attributes import BinarySetAttribute, NumberSetAttribute, UnicodeSetAttribute

    from chalicelib.store import models
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and
                node.func.attr in ("add", "delete") and isinstance(node.func.value, ast.Attribute) and
                isinstance(node.func.value.value, ast.Name)):
            continue
        model = getattr(models, node.func.value.value.id, None)
        attribute = getattr(model, "_attributes", {}).get(node.func.value.attr) if model else None
        if isinstance(attribute, (UnicodeSetAttribute, NumberSetAttribute, BinarySetAttribute)):
            found.append(ast.unparse(node.func))
    return found


def test_no_new_set_of_members_in_one_item():
    assert set_member_writes_in('tx.update("p", key, actions=[ApiKey.made_keys.add({key.key_id})])') == \
        ["ApiKey.made_keys.add"]
    assert set_member_writes_in("item.update(actions=[LedgerItem.members.add(ids), User.active_shares.add(1)])") == \
        ["LedgerItem.members.add"]  # a counter's ADD is not a set's
    found = set()
    for path in sorted((ROOT / "chalicelib").rglob("*.py")):
        found |= {(path.relative_to(ROOT).as_posix(), write)
                  for write in set_member_writes_in(path.read_text(encoding="utf-8"))}
    assert found == set(SET_MEMBER_WRITES), found


def test_no_new_work_set_in_one_ledger_item():
    assert work_sets_in('ledger.remember("exports#pending", export_id)') == {"'exports#pending'"}
    found = {}
    for path in sorted((ROOT / "chalicelib").rglob("*.py")):
        for work_set in work_sets_in(path.read_text(encoding="utf-8")):
            found.setdefault(work_set, set()).add(path.relative_to(ROOT).as_posix())
    assert set(found) == ONE_ITEM_WORK_SETS, found
    assert found["self.legacy_item"] == {"chalicelib/store/pending_queue.py"}
    from chalicelib.store import ledger
    assert not hasattr(ledger, "remember"), "nothing adds to a one-item work set any more"
