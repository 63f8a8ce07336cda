"""``modelyard tune federated`` end to end: two sites with their own rows, two rounds of
Flower (a SuperLink and one SuperNode per site, separate processes), each site training the
adapter on the real default model; the merged result is registered with its sites' lineage,
shown on its model card, and served by a real ``modelyard serve``.

Kept tiny: 6 rows per site, rank 2, the last 2 blocks, 2 steps per round. A site dropping
out mid-round is in test_federated_runtime.py (the same Flower runtime, a fake trainer)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import openai
import pytest

from modelyard.catalog.lifecycle import Stage
from modelyard.catalog.promotion import place
from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.governance.keys import KeyStore
from modelyard.intake.default_model import import_default
from modelyard.store.blobs import open_blob_store
from modelyard.store.database import Database
from tests.harness import run_modelyard, serving_gateway

pytestmark = pytest.mark.slow
DEMO = Path(__file__).resolve().parents[2] / "examples" / "tune-demo" / "train.jsonl"


def test_two_sites_tune_one_adapter_that_the_gateway_serves(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = Settings(home=home, probe_timeout_s=60)
    settings.ensure_home()
    db = Database(settings.resolved_database_url)
    registry = Registry(db, open_blob_store(settings), settings)
    import_default(registry, settings)
    rows = DEMO.read_text().splitlines()
    data = {"north": rows[:6], "south": rows[100:106]}
    paths = {}
    for site, lines in data.items():
        paths[site] = tmp_path / f"{site}.jsonl"
        paths[site].write_text("\n".join(lines) + "\n")
    result = run_modelyard(
        home,
        "tune", "federated", "--base", "gemma3-270m", "--name", "fed-router",
        "--sites", "north,south",
        "--data", f"north={paths['north']}", "--data", f"south={paths['south']}",
        "--rounds", "2", "--steps-per-round", "2", "--rank", "2", "--alpha", "4",
        "--layers", "2", "--max-seq-len", "48", "--batch-size", "2", "--threads", "1",
        "--json", timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    version = json.loads(result.stdout)["version"]
    assert version["ref"] == "fed-router@1" and version["origin"] == "tuned"
    lineage = version["lineage"]
    assert lineage["method"] == "federated-lora" and lineage["base"] == "gemma3-270m@1"
    assert lineage["strategy"] == "fedavg" and lineage["rounds"] == 2
    assert lineage["framework"].startswith("flower 1.42")
    sites = {s["site"]: s for s in lineage["sites"]}
    for site, path in paths.items():
        assert sites[site]["dataset_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert sites[site]["examples"] == 6 and sites[site]["rounds"] == [1, 2]
    assert [p["replied"] for p in lineage["participation"]] == [["north", "south"]] * 2
    text = json.dumps(lineage)
    assert "Queue:" not in text and str(paths["north"]) not in text  # no rows, no site paths
    card = run_modelyard(home, "models", "card", "fed-router@1")
    assert card.returncode == 0, card.stderr
    assert (
        "### Federated training" in card.stdout and sites["south"]["dataset_sha256"] in card.stdout
    )

    place(registry, "fed-router@1", Stage.PRODUCTION, actor="tests", reason="federated test")
    _, key = KeyStore(db, settings).create("fed-tester", created_by="tests", actor="tests")
    db.close()
    env = {"MODELYARD_WORKER_CTX_PER_SLOT": "512", "MODELYARD_WORKER_SLOTS": "2"}
    with serving_gateway(home, tmp_path / "serve.log", env) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=120)
        reply = client.chat.completions.create(
            model="fed-router",
            messages=[{"role": "user", "content": "The VPN keeps dropping, asap."}],
            max_tokens=8,
            temperature=0,
        )
    assert reply.model == "fed-router@1"
    assert reply.choices[0].message.content
