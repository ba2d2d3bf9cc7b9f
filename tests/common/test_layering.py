"""The apps' imports form no cycle, function-level imports included, and `apps.common` needs no feature app.

Read from the source (every `import` statement anywhere in a module), so an import hidden in a function
counts as much as one at the top.
"""

import ast
from collections import defaultdict
from pathlib import Path

APPS = Path(__file__).resolve().parents[2] / "apps"


def app_imports() -> dict[str, dict[str, list[str]]]:
    """Return importing app -> imported app -> the modules where it happens."""
    edges: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(APPS.rglob("*.py")):
        app = path.relative_to(APPS).parts[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] == "apps" and len(parts) > 1 and parts[1] != app:
                    edges[app][parts[1]].append(str(path.relative_to(APPS)))
    return edges


def test_no_import_cycle_between_apps():
    edges = app_imports()

    def reaches(start: str, goal: str) -> bool:
        stack, seen = [start], set()
        while stack:
            app = stack.pop()
            if app == goal:
                return True
            if app not in seen:
                seen.add(app)
                stack.extend(edges.get(app, {}))
        return False

    cycles = sorted(
        f"{a} -> {b} ({', '.join(sorted(set(edges[a][b])))}) and back"
        for a in edges
        for b in edges[a]
        if reaches(b, a)
    )
    assert cycles == []


def test_common_imports_no_feature_app():
    assert dict(app_imports().get("common", {})) == {}
