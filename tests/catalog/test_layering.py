"""The catalog sits below intake: intake registers into the catalog, never the other way."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import modelyard.catalog


def _imported_after(statement: str) -> set[str]:
    probe = (
        f"{statement}\n"
        "import sys\n"
        "print('\\n'.join(m for m in sys.modules if m.startswith('modelyard.')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def test_the_registry_does_not_import_intake() -> None:
    loaded = _imported_after("import modelyard.catalog.registry")
    assert "modelyard.catalog.registry" in loaded
    assert not {m for m in loaded if m.startswith("modelyard.intake")}


def test_no_catalog_module_imports_intake_even_lazily() -> None:
    offenders = []
    for source in Path(modelyard.catalog.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            offenders += [
                f"{source.name}: {m}" for m in modules if m.startswith("modelyard.intake")
            ]
    assert offenders == []
