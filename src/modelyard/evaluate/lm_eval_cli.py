"""``modelyard-lm-eval``: run lm-evaluation-harness with ``--model modelyard`` available."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from modelyard.evaluate.lm_eval_adapter import main as adapter_main
    except ImportError as exc:
        sys.stderr.write(f"error: lm-eval is not installed ({exc}); install modelyard[lm-eval]\n")
        sys.exit(1)
    adapter_main()
