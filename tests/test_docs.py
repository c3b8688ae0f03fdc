"""The documentation: docs/mkdocs.yml builds strictly, the generated command-line page is what the parsers give now,
the README stays a front page whose relative links (and the pages') resolve, and the tables the pages keep by hand
of per-task defaults and of the public API match the code."""
import ast
import dataclasses
import difflib
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = DOCS / "pages"
README = ROOT / "README.md"
README_MAX_LINES = 200


def _markdown_files():
    return [README, *sorted(PAGES.rglob("*.md"))]


def _without_code(text: str) -> str:
    """The text with fenced code blocks and inline code spans blanked out (links in them are not links)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def _relative_links(path: Path):
    """(target, anchor) of every Markdown link or image of a file that is neither absolute nor a mere #anchor."""
    found = []
    for target in re.findall(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", _without_code(
            path.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, flags=re.I) or target.startswith(("#", "/")):
            continue
        file, _, anchor = target.partition("#")
        found.append((file, anchor))
    return found


# --------------------------------------------------------------------------- the site builds


def test_mkdocs_build_is_strict_clean(tmp_path):
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        pytest.importorskip(module, reason="the docs extra is not installed (pip install -e '.[docs]'; "
                                           "make setup installs it with the dev extra)")
    site = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(DOCS / "mkdocs.yml"),
                           "-d", str(site)], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    # Every page of the navigation was built, the API page with an entry per public name.
    for page in PAGES.rglob("*.md"):
        rel = page.relative_to(PAGES).with_suffix("")
        built = site / rel.parent / "index.html" if rel.name == "index" else site / rel / "index.html"
        assert built.exists(), f"{page.relative_to(ROOT)} was not built"
    api = (site / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    missing = [f"{module}.{name}" for name, module in _public_api().items() if f'id="{module}.{name}"' not in api]
    assert not missing, f"the API page rendered no entry for {missing}"


# --------------------------------------------------------------------------- the generated CLI page


def _cli_reference():
    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "tools" / "cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_page_is_what_the_parsers_give_now():
    tool = _cli_reference()
    expected = tool.render()
    current = tool.PAGE.read_text(encoding="utf-8") if tool.PAGE.exists() else ""
    if current != expected:
        diff = "".join(list(difflib.unified_diff(current.splitlines(True), expected.splitlines(True),
                                                 "committed", "generated", n=1))[:60])
        pytest.fail(f"docs/pages/reference/cli.md is stale: run `python tools/cli_reference.py`\n{diff}")


def test_cli_page_covers_every_command():
    """Every module with a command line (`if __name__ == "__main__"`) has its section (tfbert.encoders.convert is
    the converter that tfbert.convert runs: the same parser)."""
    commands = set()
    for path in (ROOT / "tfbert").rglob("*.py"):
        if 'if __name__ == "__main__"' in path.read_text(encoding="utf-8"):
            commands.add(".".join(path.relative_to(ROOT).with_suffix("").parts))
    commands.discard("tfbert.encoders.convert")
    assert commands == set(_cli_reference().COMMANDS)


# --------------------------------------------------------------------------- the README and the links


def test_readme_is_a_front_page():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; the front page keeps at most " \
                                           f"{README_MAX_LINES}: move the detail to a docs page and link it"
    text = "\n".join(lines)
    for command in ("make train", "make test", "make docs"):  # the set-up commands and how to read the docs
        assert command in text, command
    linked = {(README.parent / file).resolve() for file, _ in _relative_links(README)}
    for page in ("getting-started.md", "benchmarks.md", "tasks/classification.md", "tasks/ner.md",
                 "tasks/multilabel.md", "tasks/regression.md", "tasks/qa.md", "tasks/embeddings.md"):
        assert (PAGES / page).resolve() in linked, f"the README does not link docs/pages/{page}"


def test_every_relative_link_points_at_a_file_that_exists():
    broken = []
    for path in _markdown_files():
        for file, anchor in _relative_links(path):
            if file and not (path.parent / file).exists():
                broken.append(f"{path.relative_to(ROOT)}: {file}")
    assert not broken, "links to missing files:\n" + "\n".join(broken)


def test_docs_pages_are_all_in_the_navigation():
    nav = (DOCS / "mkdocs.yml").read_text(encoding="utf-8").split("\nnav:", 1)[1]
    listed = set(re.findall(r":\s*([\w/.-]+\.md)\s*$", nav, flags=re.M))
    pages = {str(p.relative_to(PAGES)) for p in PAGES.rglob("*.md")}
    assert listed == pages, f"in nav only: {sorted(listed - pages)}; pages not in nav: {sorted(pages - listed)}"


# --------------------------------------------------------------------------- hand-kept tables vs. the code


def _public_api() -> dict:
    """tfbert._API (name -> defining module), read from tfbert/__init__.py without importing it."""
    tree = ast.parse((ROOT / "tfbert" / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_API" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("tfbert/__init__.py has no _API")


def test_api_page_documents_exactly_the_public_api():
    text = (PAGES / "reference" / "api.md").read_text(encoding="utf-8")
    documented = re.findall(r"^::: ([\w.]+)\s*$", text, flags=re.M)
    assert len(documented) == len(set(documented)), "an entry is documented twice"
    expected = {f"{module}.{name}" for name, module in _public_api().items()}
    assert set(documented) == expected, (f"not on the API page: {sorted(expected - set(documented))}; "
                                         f"not public: {sorted(set(documented) - expected)}")


def _table_rows(page: Path, heading: str) -> list[list[str]]:
    section = page.read_text(encoding="utf-8").split(heading, 1)[1].split("\n#", 1)[0]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in section.splitlines()
            if line.startswith("|")]
    return rows[2:]  # past the header and the --- line


def test_per_task_defaults_table_is_the_tasks_own():
    from tfbert.tasks import TASKS

    rows = _table_rows(PAGES / "reference" / "training.md", "## Per-task defaults")
    seen = set()
    for cells in rows:
        names = re.findall(r"`(\w+)`", cells[0])
        epochs, rate, patience, precision, frozen, pooling, monitor = cells[1:8]
        for name in names:
            seen.add(name)
            task = TASKS[name]
            d = task.defaults
            got = {"epochs": int(epochs), "learning_rate": float(rate), "patience": int(patience),
                   "precision": precision.strip("`"), "freeze_word_embeddings": {"on": True, "off": False}[frozen]}
            assert got == {k: d[k] for k in got}, (name, got, d)
            options = {f.name: f.default for f in dataclasses.fields(task.options)} if task.options else {}
            assert pooling.strip("`") == options.get("pooling", ""), (name, pooling, options.get("pooling"))
            assert re.findall(r"`(\w+)`", monitor)[0] == task.monitor, (name, monitor, task.monitor)
    assert seen == set(TASKS) - {"mlm"}, sorted(seen)
