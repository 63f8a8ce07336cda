"""Models pages: the catalog, a model, a version (card, history, lineage graph), proposing
a promotion and setting the intended use."""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import FastAPI

from modelyard.catalog.lifecycle import Stage
from modelyard.catalog.promotion import place
from modelyard.catalog.records import ModelVersion, NewVersion, VersionFile
from modelyard.catalog.registry import Registry
from modelyard.web.lineage import lineage_of, lineage_svg
from tests.web.conftest import ConsoleClient, audit_events


def add(
    registry: Registry,
    name: str,
    *,
    parent: str | None = None,
    origin: str = "imported",
    licence: str = "apache-2.0",
) -> ModelVersion:
    """A version of a few unique bytes (no real model needed to draw a page)."""
    blob = registry.blobs.write_stream([io.BytesIO(f"{name}:{uuid.uuid4()}".encode())])
    return registry.add_version(
        NewVersion(
            name=name,
            digest=blob.sha256,
            format="gguf",
            size_bytes=blob.size_bytes,
            metadata={"architecture": "llama", "license": licence},
            files=(VersionFile(f"{name}.gguf", blob.sha256, blob.size_bytes),),
            source_path=f"test:{name}",
            created_by="alice",
            origin=origin,
            parent=parent,
        )
    )


def family(registry: Registry) -> tuple[ModelVersion, ModelVersion, ModelVersion]:
    base = add(registry, "base")
    tuned = add(registry, "base-clinic", parent=base.ref, origin="tuned")
    quantized = add(registry, "base-clinic-q8", parent=tuned.ref, origin="quantized")
    return base, tuned, quantized


def registry_of(app: FastAPI) -> Registry:
    registry: Registry = app.state.gateway.registry
    return registry


def test_catalog_lists_every_version(console_app: FastAPI, viewer_client: ConsoleClient) -> None:
    registry = registry_of(console_app)
    base, _, _ = family(registry)
    place(registry, base.ref, Stage.PRODUCTION, actor="tests", reason="bundled")
    html = viewer_client.get("/console/models").text
    row = re.search(r"<tr>\s*<th scope=\"rowgroup\".*?</tr>", html, re.S)
    assert row and "base@1" in row.group(0)
    assert "production" in row.group(0) and "apache-2.0" in row.group(0)
    assert 'href="/console/models/base-clinic/1"' in html and "tuned" in html
    assert 'id="catalog"' in html


def test_the_catalog_page_when_empty(viewer_client: ConsoleClient) -> None:
    assert "The catalog is empty" in viewer_client.get("/console/models").text


def test_model_page_lists_versions_and_history(
    console_app: FastAPI, viewer_client: ConsoleClient
) -> None:
    registry = registry_of(console_app)
    add(registry, "m")
    add(registry, "m")
    place(registry, "m@2", Stage.CANDIDATE, actor="tests", reason="for review")
    html = viewer_client.get("/console/models/m").text
    assert "m@1" in html and "m@2" in html
    history = html[html.index('id="stage-history"') :]
    assert "for review" in history and "candidate" in history


def test_version_page_shows_card_history_and_lineage(
    console_app: FastAPI, viewer_client: ConsoleClient
) -> None:
    registry = registry_of(console_app)
    base, tuned, quantized = family(registry)
    place(registry, tuned.ref, Stage.CANDIDATE, actor="tests", reason="tuned on clinic data")
    html = viewer_client.get("/console/models/base-clinic/1").text
    assert 'id="version-stage">candidate<' in html
    assert "<h3>Model card: base-clinic@1</h3>" in html  # the card, headings below the page's
    assert "tuned on clinic data" in html
    graph = html[html.index("<svg") : html.index("</svg>")]
    # the whole family, with the other versions as links and this one marked
    assert 'href="/console/models/base/1"' in graph
    assert 'href="/console/models/base-clinic-q8/1"' in graph
    assert 'class="lineage-node focus"' in graph and graph.count('lineage-edge"') == 2
    assert "base@1</a> → tuned → <a" in html  # the same as text
    assert "Not signed." in html and "No trial loads" in html
    # a viewer sees no forms that change anything
    assert 'id="propose-form"' not in html and 'id="intended-use-form"' not in html
    assert base.ref and quantized.ref


def record(name: str, *, parent: str | None = None, origin: str = "imported") -> ModelVersion:
    """A catalog record as the registry hands it out (for the lineage layout alone)."""
    return ModelVersion(
        name=name,
        version=1,
        digest="0" * 64,
        format="gguf",
        size_bytes=1,
        metadata={},
        origin=origin,
        parent=parent,
        lineage={},
        source_path="",
        created_by="",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_lineage_draws_an_upstream_parent_it_does_not_hold() -> None:
    # a deployment may name an upstream parent the catalog does not hold
    imported = record("llama", parent="meta-llama/Llama-3.2-1B")
    tuned = record("llama-clinic", parent="llama@1", origin="tuned")
    other = record("unrelated")
    lineage = lineage_of([imported, tuned, other], tuned.ref, {tuned.ref: "candidate"})
    assert [(n.ref, n.known, n.depth, n.row) for n in lineage.nodes] == [
        ("meta-llama/Llama-3.2-1B", False, 0, 0),
        ("llama@1", True, 1, 0),
        ("llama-clinic@1", True, 2, 0),
    ]
    svg = str(lineage_svg(lineage))
    assert 'class="lineage-node external"' in svg and "meta-llama/Llama-3.2-1B" in svg
    assert 'href="/console/models/llama/1"' in svg and "tuned · candidate" in svg
    assert "<script" not in svg and "style=" not in svg


def test_lineage_escapes_what_it_draws() -> None:
    hostile = record("x", parent="<img src=x onerror=alert(1)>", origin="<script>alert(1)</script>")
    svg = str(lineage_svg(lineage_of([hostile], "x@1")))
    assert "<script>" not in svg and "<img" not in svg and "&lt;script&gt;" in svg


def test_an_operator_proposes_from_the_version_page(
    console_app: FastAPI, console_client: Callable[..., ConsoleClient]
) -> None:
    registry = registry_of(console_app)
    add(registry, "m")
    operator = console_client("operator")
    page = operator.get("/console/models/m/1").text
    assert 'id="propose-form"' in page and '<label for="propose-reason">' in page
    answer = operator.submit(
        "/console/models/m/1/propose", {"to": "production", "reason": "pilot passed"}
    )
    assert answer.status_code == 200 and answer.url.path.startswith("/console/approvals/")
    assert "Proposed m@1 → production" in answer.text
    proposed = audit_events(console_app, "lifecycle.propose")
    assert proposed[-1]["actor"] == operator.operator
    assert "Pending proposals" in operator.get("/console/models/m/1").text


def test_a_bad_proposal_shows_the_api_error_and_keeps_the_input(
    console_app: FastAPI, console_client: Callable[..., ConsoleClient]
) -> None:
    add(registry_of(console_app), "m")
    operator = console_client("operator")
    answer = operator.submit("/console/models/m/1/propose", {"to": "production", "reason": " "})
    assert answer.status_code == 400
    assert (
        "a proposal needs a reason" in answer.text and "field: <code>reason</code>" in answer.text
    )
    bad_stage = operator.submit(
        "/console/models/m/1/propose", {"to": "heaven", "reason": "kept text"}
    )
    assert bad_stage.status_code == 400 and "unknown stage" in bad_stage.text
    assert "kept text</textarea>" in bad_stage.text


def test_a_viewer_cannot_propose(console_app: FastAPI, viewer_client: ConsoleClient) -> None:
    add(registry_of(console_app), "m")
    answer = viewer_client.submit("/console/models/m/1/propose", {"to": "candidate", "reason": "x"})
    assert answer.status_code == 403
    assert audit_events(console_app, "lifecycle.propose") == []
    assert audit_events(console_app, "access.denied")[-1]["details"]["action"] == (
        "lifecycle.propose"
    )


def test_intended_use(console_app: FastAPI, console_client: Callable[..., ConsoleClient]) -> None:
    add(registry_of(console_app), "m")
    operator = console_client("operator")
    answer = operator.submit(
        "/console/models/m/1/intended-use", {"intended_use": "Triage notes; not diagnosis."}
    )
    assert answer.status_code == 200 and "Intended use of m@1 saved" in answer.text
    assert "Triage notes; not diagnosis." in answer.text
    assert audit_events(console_app, "model.intended_use")[-1]["actor"] == operator.operator


def test_unknown_models_are_a_404_page(viewer_client: ConsoleClient) -> None:
    missing = viewer_client.get("/console/models/nothing")
    assert missing.status_code == 404 and "no model named" in missing.text
    assert viewer_client.get("/console/models/nothing/3").status_code == 404
    bad = viewer_client.get("/console/models/m/one")
    assert bad.status_code == 400 and "text/html" in bad.headers["content-type"]
