"""Model cards carry provenance, hashes, intended use, eval and bias results, history."""

from __future__ import annotations

from modelyard.catalog.advisories import Advisories
from modelyard.catalog.cards import card_for
from modelyard.catalog.promotion import Lifecycle
from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.governance.policy import Policy
from tests.lifecycle.helpers import add_run, add_version


def test_card_has_every_section(fast_registry: Registry, sqlite_settings: Settings) -> None:
    version = add_version(fast_registry, "m", created_by="alice")
    run = add_run(fast_registry, version, score=0.875)
    bias = add_run(fast_registry, version, kind="bias", suite=None, metric="bias:age", score=0.03)
    Advisories(fast_registry).add(
        "m@1", "CVE-2026-5", severity="medium", action="warn", actor="sec", summary="tokenizer"
    )
    lc = Lifecycle(fast_registry, sqlite_settings, Policy())
    lc.promote("m@1", "approved", actor="bob", reason="reviewed | ok")
    lc.set_intended_use(
        "m@1", "Drafting replies to\ncustomer emails; not for medical advice.", actor="bob"
    )
    card = card_for(lc, "m@1")
    assert card.startswith("# Model card: m@1\n")
    assert "| stage | approved |" in card and "| licence | apache-2.0 |" in card
    assert f"| digest | sha256:{version.digest} |" in card
    assert f"| m.gguf | {version.digest} |" in card
    assert "| created by | alice |" in card and "| source | test:m |" in card
    assert "Drafting replies to\ncustomer emails; not for medical advice." in card
    assert "| clinic-qa | contains | 0.875 |" in card and run in card
    assert f"| bias:age | 0.03 | 20 | {bias} |" in card
    assert "| CVE-2026-5 | medium | warn | tokenizer | active |" in card
    assert "| registered | candidate | bob | reviewed \\| ok |" in card
    assert "| candidate | approved | bob | reviewed \\| ok |" in card


def test_card_without_evidence_says_so(fast_registry: Registry, sqlite_settings: Settings) -> None:
    add_version(fast_registry, "m")
    card = card_for(Lifecycle(fast_registry, sqlite_settings, Policy()), "m")
    assert "_No finished evaluation runs._" in card and "_No finished bias probes._" in card
    assert "_Not written yet: `modelyard models card m@1 --intended-use" in card
    assert "## Advisories\n\n_None._" in card
