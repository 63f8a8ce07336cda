"""A federation on this host through the real Flower processes (SuperLink, one SuperNode per
site, ``flwr run``) with a fake site trainer: each site adds its number to the adapter and
reports 10 * its number examples, so the aggregate is known exactly. Needs ``.venv-flower``
(constraints-flower.txt); without it these tests fail and say how to set it up."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import modelyard.tune.federated as federated
from modelyard.errors import EngineFault, InvalidInput
from modelyard.tune.federated.runtime import SETUP_HINT, SiteSpec, run_federation

REPO = Path(__file__).resolve().parents[2]
FLOWER_BIN = REPO / ".venv-flower" / "bin"
APP_DIR = Path(federated.__file__).parent / "flower_app"
KEYS = ("layers.0.q_proj.lora_A.weight", "layers.0.q_proj.lora_B.weight")

FAKE_TRAINER = """\
#!{python}
# Called as: TRAINER -m modelyard.tune.federated.site_round SPEC.json
import json, sys, time
from pathlib import Path
import numpy as np

spec = json.loads(Path(sys.argv[-1]).read_text())
number = int(spec["number"])
if spec["round"] == spec.get("hang_round"):
    time.sleep(3600)
with np.load(spec["adapter_in"]) as npz:
    arrays = {{key: npz[key] + np.float32(number) for key in npz.files}}
np.savez(spec["adapter_out"], **arrays)
result = {{"examples": 10 * number, "sha256": spec["expected_sha"], "train_loss": 1.0 / number}}
(Path(spec["adapter_out"]).parent / "result.json").write_text(json.dumps(result))
"""


def flower_bin() -> Path:
    if not (FLOWER_BIN / "flwr").is_file():
        pytest.fail(
            f"the Flower venv is missing ({FLOWER_BIN.parent}); set it up from {REPO}: {SETUP_HINT}"
        )
    return FLOWER_BIN


def make_site(tmp_path: Path, trainer: Path, number: int, hang_round: int | None) -> SiteSpec:
    """Site ``number``: its data file, the spec JSON the trainer reads, its work folder."""
    name = f"site-{number}"
    folder = tmp_path / name
    folder.mkdir()
    data = folder / "data.jsonl"
    data.write_text(json.dumps({"input": f"row of {name}", "expected": "x"}) + "\n")
    sha = hashlib.sha256(data.read_bytes()).hexdigest()
    spec = folder / "spec.json"
    spec.write_text(json.dumps({"number": number, "hang_round": hang_round, "expected_sha": sha}))
    node_config: dict[str, str | int | float | bool] = {
        "site": name,
        "data": str(data),
        "python": str(trainer),
        "work": str(folder / "work"),
        "spec": str(spec),
    }
    return SiteSpec(name=name, node_config=node_config)


def write_trainer(tmp_path: Path) -> Path:
    trainer = tmp_path / "fake_trainer.py"
    trainer.write_text(FAKE_TRAINER.format(python=sys.executable))
    trainer.chmod(trainer.stat().st_mode | stat.S_IXUSR)
    return trainer


def write_init(tmp_path: Path) -> dict[str, np.ndarray]:
    init = {
        KEYS[0]: np.zeros((2, 3), dtype=np.float32),
        KEYS[1]: np.full((3, 2), 0.5, dtype=np.float32),
    }
    np.savez(tmp_path / "init.npz", allow_pickle=False, **init)
    return init


def federate(
    tmp_path: Path, *, hang: dict[int, int], round_timeout: float, min_sites: int
) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, np.ndarray], list[str]]:
    """Two sites, two rounds of FedAvg; returns the report, the initial and final adapters
    and the lines ``flwr run`` streamed."""
    trainer = write_trainer(tmp_path)
    init = write_init(tmp_path)
    sites = [make_site(tmp_path, trainer, n, hang.get(n)) for n in (1, 2)]
    lines: list[str] = []
    run_federation(
        flower_bin=flower_bin(),
        app_dir=APP_DIR,
        work=tmp_path / "federation",
        sites=sites,
        run_config={
            "rounds": 2,
            "strategy": "fedavg",
            "proximal-mu": 0.0,
            "min-sites": min_sites,
            "round-timeout": round_timeout,
            "init": str(tmp_path / "init.npz"),
            "out": str(tmp_path / "final.npz"),
            "report": str(tmp_path / "report.json"),
        },
        timeout_s=300,
        on_line=lines.append,
    )
    report = json.loads((tmp_path / "report.json").read_text())
    with np.load(tmp_path / "final.npz") as npz:
        final = {key: npz[key] for key in npz.files}
    return report, init, final, lines


def sha_of(tmp_path: Path, name: str) -> str:
    return hashlib.sha256((tmp_path / name / "data.jsonl").read_bytes()).hexdigest()


def processes_mentioning(text: str) -> list[str]:
    """Live processes whose command line or environment mentions ``text`` (the test's
    folder: every Flower process has its FLWR_HOME there)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ")
            environ = Path(f"/proc/{entry.name}/environ").read_bytes()
        except OSError:
            continue
        if text.encode() in cmdline + environ:
            found.append(f"{entry.name}: {cmdline.decode(errors='replace')}")
    return found


@pytest.mark.slow
def test_two_sites_two_rounds_average_by_examples(tmp_path: Path) -> None:
    report, init, final, lines = federate(tmp_path, hang={}, round_timeout=120.0, min_sites=2)

    # Each round: (10 * (w + 1) + 20 * (w + 2)) / 30 = w + 5/3.
    assert sorted(final) == sorted(KEYS)
    for key in KEYS:
        assert final[key].dtype == np.float32
        np.testing.assert_allclose(final[key], init[key] + 2 * 5 / 3, rtol=1e-5)
    assert [r["round"] for r in report["rounds"]] == [1, 2]
    for server_round in report["rounds"]:
        assert server_round["missing"] == []
        replied = {e["site"]: e for e in server_round["replied"]}
        assert sorted(replied) == ["site-1", "site-2"]
        for number in (1, 2):
            entry = replied[f"site-{number}"]
            assert entry["num-examples"] == 10 * number
            assert entry["dataset-sha256"] == sha_of(tmp_path, f"site-{number}")
            assert entry["train-loss"] == pytest.approx(1.0 / number)
    assert any("[ROUND 2/2]" in line for line in lines)
    assert (tmp_path / "federation" / "logs" / "superlink.log").is_file()
    assert (tmp_path / "site-2" / "work" / "round-2" / "adapter-in.npz").is_file()
    assert processes_mentioning(str(tmp_path)) == []


@pytest.mark.slow
def test_a_site_that_hangs_is_reported_missing_and_the_run_finishes(tmp_path: Path) -> None:
    report, init, final, _ = federate(tmp_path, hang={2: 2}, round_timeout=15.0, min_sites=1)

    # Round 1 as above (w + 5/3); round 2 has site 1 alone (w + 1).
    for key in KEYS:
        np.testing.assert_allclose(final[key], init[key] + 5 / 3 + 1, rtol=1e-5)
    first, second = report["rounds"]
    assert sorted(e["site"] for e in first["replied"]) == ["site-1", "site-2"]
    assert [e["site"] for e in second["replied"]] == ["site-1"]
    assert [m["site"] for m in second["missing"]] == ["site-2"]
    assert "timeout" in second["missing"][0]["reason"]
    # The hanging trainer (and its SuperNode) were ended with the run.
    assert processes_mentioning(str(tmp_path)) == []


@pytest.mark.slow
def test_a_server_app_failure_ends_every_process_and_names_the_cause(tmp_path: Path) -> None:
    site = make_site(tmp_path, write_trainer(tmp_path), 1, None)
    with pytest.raises(EngineFault) as failed:
        run_federation(
            flower_bin=flower_bin(),
            app_dir=APP_DIR,
            work=tmp_path / "federation",
            sites=[site],
            run_config={
                "init": str(tmp_path / "missing.npz"),
                "out": str(tmp_path / "final.npz"),
                "report": str(tmp_path / "report.json"),
            },
            timeout_s=300,
        )
    assert "the ServerApp failed" in failed.value.message
    assert "missing.npz" in failed.value.message  # the ServerApp's traceback, from the log tail
    assert processes_mentioning(str(tmp_path)) == []


def test_no_flower_venv_is_refused_with_the_set_up(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"pip install -c constraints-flower\.txt"):
        run_federation(
            flower_bin=tmp_path / "bin",
            app_dir=APP_DIR,
            work=tmp_path / "work",
            sites=[SiteSpec("a")],
            run_config={},
            timeout_s=10,
        )


def test_bad_names_and_values_are_refused_before_anything_starts(tmp_path: Path) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    for name in ("flower-superlink", "flower-supernode", "flwr"):
        (fake_bin / name).write_text("#!/bin/sh\nexit 99\n")
    calls: list[dict[str, Any]] = [
        {"sites": [SiteSpec("a"), SiteSpec("a")], "run_config": {}},
        {"sites": [SiteSpec("../x")], "run_config": {}},
        {"sites": [SiteSpec("a")], "run_config": {"rounds": float("nan")}},
        {"sites": [SiteSpec("a")], "run_config": {"bad key": 1}},
        {"sites": [], "run_config": {}},
    ]
    for call in calls:
        with pytest.raises(InvalidInput):
            run_federation(
                flower_bin=fake_bin, app_dir=APP_DIR, work=tmp_path / "w", timeout_s=10, **call
            )
    assert not (tmp_path / "w").exists()
