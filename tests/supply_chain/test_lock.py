"""The install is hash-pinned: every installed distribution is in the locks, with a hash."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCKS = [ROOT / "requirements.lock", ROOT / "requirements-dev.lock"]


def run_check(*locks: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "lock.py"), "--check", "--locks", *map(str, locks)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def without(lock: Path, name: str, dest: Path) -> Path:
    """A copy of ``lock`` with ``name``'s entry (its line and hash continuation lines) removed."""
    kept, skipping = [], False
    for line in lock.read_text().splitlines():
        if line.startswith(f"{name}=="):
            skipping = True
            continue
        if skipping and line.startswith("    --hash"):
            continue
        skipping = False
        kept.append(line)
    dest.write_text("\n".join(kept) + "\n")
    return dest


def test_this_environment_holds_only_locked_distributions() -> None:
    result = run_check(*LOCKS)
    assert result.returncode == 0, result.stderr
    assert "all pinned by hash" in result.stdout


def test_an_installed_distribution_missing_from_the_lock_fails_the_check(tmp_path: Path) -> None:
    runtime = without(LOCKS[0], "numpy", tmp_path / "requirements.lock")
    assert "numpy==" not in runtime.read_text()
    result = run_check(runtime, LOCKS[1])
    assert result.returncode == 1
    assert "numpy" in result.stderr and "not in the locks" in result.stderr


def test_an_entry_without_a_hash_fails_the_check(tmp_path: Path) -> None:
    text = LOCKS[1].read_text()
    lock = tmp_path / "requirements-dev.lock"
    lock.write_text(text + "\nextra-unhashed==1.0\n")
    result = run_check(LOCKS[0], lock)
    assert result.returncode == 1
    assert "no hash for extra-unhashed==1.0" in result.stderr


def test_every_pin_in_constraints_is_locked_with_the_same_version() -> None:
    locked = "".join(lock.read_text() for lock in LOCKS).lower().replace("_", "-")
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" not in line:
            continue
        name, version = line.lower().replace("_", "-").split("==")
        if name in {"llama-cpp-python"}:
            continue  # built here from its SHA-256-pinned sdist (scripts/build-llama-cpp.sh)
        assert f"\n{name}=={version}" in locked, f"{name}=={version} not locked"
