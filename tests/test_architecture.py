"""The package's shape, checked with `ast`: no import cycles, no private names imported across modules, tasks
independent of the loop and the CLIs, and one ruff configuration that the whole tree passes."""
import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tfbert"
ENTRY_POINTS = {"tfbert.fit", "tfbert.train", "tfbert.cli", "tfbert.predict", "tfbert.evaluate", "tfbert.convert"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path):
    """(imported module, imported names) of every import statement in the file, at any depth."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, [alias.name for alias in node.names]


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _graph() -> dict[str, set[str]]:
    graph = {}
    for name, path in MODULES.items():
        edges = set()
        for module, names in _imports(path):
            if module.startswith("tfbert"):
                # `from tfbert.data import tables` imports the module tfbert.data.tables
                edges |= {f"{module}.{n}" for n in names if f"{module}.{n}" in MODULES} or {module}
        graph[name] = {e for e in edges if e in MODULES and e != name}
    return graph


def test_the_import_graph_has_no_cycle():
    graph, state, cycles = _graph(), {}, []

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


def test_no_private_name_is_imported_from_another_module():
    bad = [(name, module, n) for name, path in MODULES.items() for module, names in _imports(path)
           if module.startswith("tfbert") for n in names if n.startswith("_")]
    assert not bad, bad


def test_tasks_do_not_import_the_loop_or_the_command_lines():
    bad = [(name, module) for name, path in MODULES.items() if name.startswith("tfbert.tasks")
           for module, _ in _imports(path) if module in ENTRY_POINTS]
    assert not bad, bad


def test_the_checks_see_a_cycle_and_a_private_import(tmp_path, monkeypatch):
    """The two checks above would fail on a package that had either fault."""
    pkg = tmp_path / "tfbert"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from tfbert.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from tfbert.a import _hidden\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", pkg)
    monkeypatch.setattr(sys.modules[__name__], "MODULES", {_module_name(p): p for p in pkg.rglob("*.py")})
    with pytest.raises(AssertionError, match="tfbert.a"):
        test_the_import_graph_has_no_cycle()
    with pytest.raises(AssertionError, match="_hidden"):
        test_no_private_name_is_imported_from_another_module()


def test_ruff_passes_on_the_whole_tree():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is not installed: it is in the dev extra (pip install -e '.[dev]')")
    root = PACKAGE.parent
    r = subprocess.run([ruff, "check", "tfbert", "tests", "benchmarks", "tools"], cwd=root, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-1000:]


def test_every_serving_kind_an_exporter_writes_has_its_client():
    """tfbert.serving.CLIENTS is the one map from an export's "serving" kind to its client module: every kind the
    exporters write is in it, and every client module is listed."""
    import re

    from tfbert.serving import CLIENTS
    written = {kind for path in (PACKAGE / "export").glob("*.py")
               for kind in re.findall(r'"serving": "(\w+)"', path.read_text(encoding="utf-8"))}
    modules = {f"tfbert.serving.{p.stem}" for p in (PACKAGE / "serving").glob("*.py") if p.stem != "__init__"}
    assert written == set(CLIENTS) and set(CLIENTS.values()) == modules, (written, modules)
