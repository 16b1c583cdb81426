"""docs/architecture.md §4 says which package may import which: the code agrees.

The table's first column names the packages of a row, its last column the
packages they may import (backticked names; "anything" for the CLIs).  Every
``gateway`` import of every module is checked against its row; a package
the table does not list is not checked (a new package adds its row).
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

from tests.docs.pages import DOCS, REPO, section

GATEWAY = REPO / "gateway"


def allowed_imports() -> dict[str, set[str] | None]:
    """package -> allowed packages (None: anything), from the page's table."""
    out: dict[str, set[str] | None] = {}
    for line in section((DOCS / "architecture.md").read_text(encoding="utf-8"), 4).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) != 3 or set(cells[0]) <= {"-"}:
            continue
        names = re.findall(r"`(\w+)/?`", cells[0])
        if not names:
            continue
        may: set[str] | None = None if cells[2] == "anything" else set()
        if may is not None:
            if "not checked" in cells[2]:
                continue
            may = set(re.findall(r"`(\w+)`", cells[2]))
        for name in names:
            out[name] = may
    return out


def package_of(path: Path) -> str:
    rel = path.relative_to(GATEWAY).parts
    return rel[0] if len(rel) > 1 else rel[0].removesuffix(".py")


def imports_of(path: Path) -> set[str]:
    """The ``gateway`` subpackages and modules that ``path`` imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] != "gateway":
                continue
            if len(parts) > 1:
                found.add(parts[1])
            else:
                found |= {
                    a.name
                    for a in node.names
                    if (GATEWAY / a.name).exists() or (GATEWAY / f"{a.name}.py").exists()
                }
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "gateway" and len(parts) > 1:
                    found.add(parts[1])
    return found


def test_the_table_is_read() -> None:
    table = allowed_imports()
    assert table["routing"] == {"model", "errors", "clock"}
    assert table["cli"] is None
    assert "sim" not in table and len(table) >= 15


def test_every_import_is_allowed_by_the_architecture_page() -> None:
    table = allowed_imports()
    wrong: dict[str, set[str]] = defaultdict(set)
    for path in sorted(GATEWAY.rglob("*.py")):
        pkg = package_of(path)
        if pkg not in table or table[pkg] is None or pkg == "__init__":
            continue
        allowed = table[pkg]
        assert allowed is not None
        for dep in imports_of(path) - allowed - {pkg}:
            wrong[f"{pkg} -> {dep}"].add(str(path.relative_to(REPO)))
    assert not wrong, "imports docs/architecture.md §4 does not allow:\n" + "\n".join(
        f"{edge}: {', '.join(sorted(files))}" for edge, files in sorted(wrong.items())
    )
