"""The project's own rules, checked with every test run."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    found = BIN / name
    return str(found) if found.exists() else (shutil.which(name) or name)


def test_ruff_is_clean() -> None:
    done = subprocess.run([_tool("ruff"), "check", "--quiet", "."], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_core_never_imports_qt() -> None:
    done = subprocess.run([_tool("lint-imports")], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    for path in (ROOT / "clapdesk" / "core").rglob("*.py"):
        assert not re.search(r"^\s*(from|import) (PySide6|shiboken6)", path.read_text(), re.M), path


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```(?:bash|sh)?\n(.*?)\n```", readme, re.S)
    setup = [c for c in commands if "packaging/install.sh" in c]
    assert len(setup) == 2, "README has exactly two set-up commands"
    test_command = next(c for c in setup if "pytest" in c).strip()
    assert test_command in (ROOT / ".ci" / "run").read_text()


def test_no_remote_code_and_safetensors_only() -> None:
    source = "\n".join(p.read_text() for p in (ROOT / "clapdesk").rglob("*.py"))
    assert "trust_remote_code=True" not in source
    assert "use_safetensors=True" in source
