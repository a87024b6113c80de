"""The import graph of chalicelib, read from the source (every ``import``, also inside
functions), and the rules it must keep (docs/architecture.md):

- ``lazy_import("chalicelib.x")`` (chalicelib/lazy.py: loaded on first use) is an import too;
- floors: ground (settings, limit_settings, errors, limit_errors, logs, clock, crypto, lambda_answer,
  web) <- store <- services <- deps <- api <- app.py; a module imports only from its own floor or lower ones;
- no cycle between modules;
- services and store import nothing of Chalice;
- services import nothing of PynamoDB: keys, conditions and storage errors are the store's,
  so a service that would decode a failed condition has nothing to decode it with.

``python -m tools.import_graph`` prints the floors, the edges and any violation.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

ROOT = Path(__file__).resolve().parent.parent
GROUND = {"chalicelib", "chalicelib.settings", "chalicelib.limit_settings", "chalicelib.errors",
          "chalicelib.limit_errors", "chalicelib.logs", "chalicelib.clock", "chalicelib.crypto", "chalicelib.web",
          "chalicelib.lazy", "chalicelib.lambda_answer"}
FLOORS = ("ground", "store", "services", "deps", "api", "app")


def floor_of(module: str) -> str:
    if module == "app":
        return "app"
    if module in GROUND:
        return "ground"
    for name in ("store", "services", "api"):
        if module == f"chalicelib.{name}" or module.startswith(f"chalicelib.{name}."):
            return name
    if module == "chalicelib.deps":
        return "deps"
    raise ValueError(f"{module} belongs to no floor: add it to tools/import_graph.py and docs/architecture.md")


def module_files() -> Dict[str, Path]:
    files = {"app": ROOT / "app.py"}
    for path in sorted((ROOT / "chalicelib").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(parts)] = path
    return files


def _imported(node: ast.AST, module: str, is_package: bool) -> List[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            package = module.split(".") if is_package else module.split(".")[:-1]
            package = package[:len(package) - (node.level - 1)]
            base = ".".join(package + ([base] if base else []))
        # "from chalicelib.store import ledger" imports the module chalicelib.store.ledger.
        return [base] + [f"{base}.{alias.name}" for alias in node.names]
    if (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "lazy_import"
            and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
        return [node.args[0].value]
    return []


def graph() -> Tuple[Dict[str, Set[str]], Dict[str, Set[str]]]:
    """(module -> chalicelib modules it imports, module -> third-party top-level packages)."""
    files = module_files()
    internal: Dict[str, Set[str]] = {}
    external: Dict[str, Set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        internal[module], external[module] = set(), set()
        for node in ast.walk(tree):
            for name in _imported(node, module, path.name == "__init__.py"):
                if name in files and name != module:
                    internal[module].add(name)
                elif not name.startswith("chalicelib") and name:
                    external[module].add(name.split(".")[0])
        # "import chalicelib.x" also names the package chalicelib: not an edge of its own.
        internal[module].discard("chalicelib")
    return internal, external


def find_cycle(edges: Dict[str, Set[str]]) -> Optional[List[str]]:
    state: Dict[str, int] = {}
    stack: List[str] = []

    def visit(node: str) -> Optional[List[str]]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if state.get(nxt) is None:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if state.get(node) is None:
            found = visit(node)
            if found:
                return found
    return None


def violations(internal: Optional[Dict[str, Set[str]]] = None,
               external: Optional[Dict[str, Set[str]]] = None) -> List[str]:
    """Every broken rule, for the given graph (default: chalicelib's own)."""
    if internal is None or external is None:
        internal, external = graph()
    problems = []
    for module, targets in sorted(internal.items()):
        rank = FLOORS.index(floor_of(module))
        for target in sorted(targets):
            if FLOORS.index(floor_of(target)) > rank:
                problems.append(f"upward import: {module} ({floor_of(module)}) -> {target} ({floor_of(target)})")
        if floor_of(module) in ("ground", "store", "services") and "chalice" in external.get(module, ()):
            problems.append(f"{module} ({floor_of(module)}) imports chalice")
        if floor_of(module) in ("ground", "services") and "pynamodb" in external.get(module, ()):
            problems.append(f"{module} ({floor_of(module)}) imports pynamodb")
    cycle = find_cycle(internal)
    if cycle:
        problems.append("cycle: " + " -> ".join(cycle))
    return problems


def main() -> int:
    internal, _ = graph()
    for floor in reversed(FLOORS):
        modules = [m for m in sorted(internal) if floor_of(m) == floor]
        print(f"{floor}:")
        for module in modules:
            print(f"  {module} -> {', '.join(sorted(internal[module])) or '-'}")
    problems = violations()
    for problem in problems:
        print("VIOLATION", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
