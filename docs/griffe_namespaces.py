"""A Griffe extension for the API page: tfbert's sub-packages (tfbert/data/, tfbert/encoders/, ...) have no
__init__.py. Python imports them as namespace packages inside the regular package `tfbert`; Griffe, which reads the
source without importing it, skips such folders. This extension adds them, and the modules in them, to the loaded
`tfbert` package, with Griffe's public API only (`griffe.Module`, `griffe.visit`).

mkdocs.yml names it under mkdocstrings' python options (`extensions`), relative to mkdocs.yml.
"""
from __future__ import annotations

from pathlib import Path

import griffe


class NamespaceSubpackages(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs) -> None:
        if pkg.filepath is None or isinstance(pkg.filepath, list) or pkg.filepath.name != "__init__.py":
            return
        self._add_folders(pkg, pkg.filepath.parent, loader)

    # Griffe 1.x calls the same event on_package_loaded.
    on_package_loaded = on_package

    def _add_folders(self, parent: griffe.Module, folder: Path, loader: griffe.GriffeLoader) -> None:
        for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))):
            if (sub / "__init__.py").exists():
                continue  # a regular sub-package: Griffe loaded it
            files = sorted(sub.glob("*.py"))
            if not files or sub.name in parent.members:
                continue
            module = griffe.Module(sub.name, filepath=[sub], parent=parent)
            parent.set_member(sub.name, module)
            for path in files:
                self._visit(module, path, loader)
            self._add_folders(module, sub, loader)

    def _visit(self, parent: griffe.Module, path: Path, loader: griffe.GriffeLoader) -> None:
        module = griffe.visit(path.stem, path, path.read_text(encoding="utf-8"), parent=parent,
                              extensions=loader.extensions, docstring_parser=loader.docstring_parser,
                              docstring_options=loader.docstring_options, lines_collection=loader.lines_collection,
                              modules_collection=loader.modules_collection)
        parent.set_member(path.stem, module)
