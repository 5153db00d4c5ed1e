"""The codebase's shape: one-way layering, no private imports across modules, small files.

Layers (each imports only those below it): ``attackers`` (with its bottom module
``attackers.frame``) <- ``cloak`` <- ``evaluation``. Checked statically on every import
statement, including imports inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO_ROOT

#: Top-level packages, lowest layer first: each may import only those before it.
LAYERS = ("attackers", "cloak", "evaluation")
#: Everything that holds Python source.
SOURCE_ROOTS = (*LAYERS, "scripts", "tests")
MAX_LINES = 500


def _sources(roots: tuple[str, ...] = SOURCE_ROOTS) -> list[Path]:
    return sorted(p for root in roots for p in (REPO_ROOT / root).rglob("*.py"))


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, imported names) of every absolute import in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, a.name, []) for a in node.names)
    return found


def test_no_private_names_imported_across_modules() -> None:
    offences = [
        f"{path.relative_to(REPO_ROOT)}:{line}: from {module} import {name}"
        for path in _sources()
        for line, module, names in _imports(path)
        if module.split(".")[0] in LAYERS
        for name in names
        if name.startswith("_")
    ]
    assert not offences, "private names imported from another module:\n" + "\n".join(offences)


def test_layers_import_only_downwards() -> None:
    offences = []
    for rank, layer in enumerate(LAYERS):
        above = set(LAYERS[rank + 1:])
        for path in _sources((layer,)):
            offences += [f"{path.relative_to(REPO_ROOT)}:{line}: imports {module}"
                         for line, module, _ in _imports(path)
                         if module.split(".")[0] in above]
    assert not offences, "imports against the layering:\n" + "\n".join(offences)


def test_frame_is_the_bottom_module() -> None:
    project = [m for _, m, _ in _imports(REPO_ROOT / "attackers" / "frame.py")
               if m.split(".")[0] in LAYERS]
    assert project == []


def test_source_files_are_small() -> None:
    long = {str(p.relative_to(REPO_ROOT)): n for p in _sources()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) >= MAX_LINES}
    assert not long, f"files of {MAX_LINES} lines or more: {long}"
