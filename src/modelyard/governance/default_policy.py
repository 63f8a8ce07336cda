"""The policy a new home starts with: governed by default, every gate explained in comments.

Written once, at the first run (:func:`ensure_default_policy`), into ``<home>/modelyard.toml``
and never again: a marker file remembers that it was written, so an operator who deletes the
policy gets "no policy" (promotions refused without an audited override), not a new default.
"""

from __future__ import annotations

from pathlib import Path

from modelyard.atomic_write import create_new
from modelyard.config import Settings

MARKER = ".default-policy-written"

DEFAULT_POLICY = """\
# modelyard lifecycle policy, written at the first run. Edit it, and keep it under review
# (in git, say): every stage change is checked against it and records its SHA-256.
#
#   modelyard policy check NAME@N --to production   shows every gate for one version
#   docs/lifecycle.md ("Policy")                      explains each gate
#
# Deleting this file does not switch governance off: with no policy, a promotion into
# `approved` or `production` needs --override-no-policy, which the audit log records.

[policy]
# Licences a version may carry to pass the `licence` gate; shell patterns allowed ("llama3*").
# A version whose licence is unknown never passes.
licences = [
    "apache-2.0", "mit", "bsd-3-clause", "gemma",
    "llama3", "llama3.1", "llama3.2", "llama3.3",
]

# `approved`: a pilot, served only to keys with the pilot scope.
[policy.stages.approved]
licence = true          # the version's licence is on the list above
intake = true           # safe formats only (GGUF, safetensors), stored hashes re-checked

# `production`: served to every key that may use the model.
[policy.stages.production]
licence = true
intake = true
trial_load = true       # `modelyard models trial-load NAME@N` loaded these exact bytes
eval_evidence = true    # at least one finished `modelyard eval run` on these exact bytes
four_eyes = true        # two people: one proposes (`modelyard approvals propose`), another
                        # logged-in operator approves; neither an OS user nor an API key counts
# The bias gate: a `modelyard eval bias --category gender` run on these bytes whose largest
# gap is at most `max`. To switch it off, comment out the next line.
bias = [{ probe = "gender", max = 0.2 }]
# Add suites of your own, e.g.:
# evals = [{ suite = "faq", metric = "contains", min = 0.8 }]
"""


def ensure_default_policy(settings: Settings) -> Path | None:
    """Write the default policy at the first run; the path written, else None.

    Nothing is written when a policy is configured (``MODELYARD_POLICY_FILE``), when the home
    already holds a policy file, or when one was written before."""
    from modelyard.governance.policy import POLICY_FILE_NAMES

    home = settings.home
    if settings.policy_file is not None or (home / MARKER).exists():
        return None
    if any((home / name).exists() for name in POLICY_FILE_NAMES):
        create_new(home / MARKER, b"")
        return None
    target = home / POLICY_FILE_NAMES[0]
    written = create_new(target, DEFAULT_POLICY.encode(), mode=0o644)
    create_new(home / MARKER, b"")
    return target if written else None
