"""An lm-evaluation-harness model backed by a modelyard model (optional extra ``[lm-eval]``).

lm-eval finds models in its own registry, which it fills from its own package only, so
modelyard ships a launcher that registers ``modelyard`` and then runs lm-eval's usual CLI::

    modelyard-lm-eval run --model modelyard --model_args model=gemma3-270m \\
        --tasks my_task --include_path ./my_tasks

Everything stays offline: tasks must read local files (``dataset_path: json`` with
``dataset_kwargs.data_files``). Log-likelihoods come from the llama.cpp scorer, generations
from the version's engine worker (greedy).
"""

from __future__ import annotations

from typing import Any

from lm_eval.api.model import LM
from lm_eval.api.registry import model_registry

from modelyard.config import Settings
from modelyard.engines.base import Engine, SamplingParams, collect
from modelyard.engines.scoring import Scorer
from modelyard.evaluate.models import EngineFactory, ScorerFactory, engine_factory, scorer_factory

MODEL_NAME = "modelyard"


class ModelyardLM(LM):  # type: ignore[misc]
    """``--model_args model=NAME[@V][,max_gen_toks=256]`` (settings from MODELYARD_*)."""

    def __init__(
        self,
        model: str = "gemma3-270m",
        max_gen_toks: int | str = 256,
        *,
        engines: EngineFactory | None = None,
        scorers: ScorerFactory | None = None,
        **_ignored: Any,
    ) -> None:
        super().__init__()
        from modelyard.cli.runtime import Runtime

        self._runtime = Runtime(Settings())
        self.version = self._runtime.registry.resolve(model)
        self.max_gen_toks = int(max_gen_toks)
        blobs, settings = self._runtime.blobs, self._runtime.settings
        self._engines = engines or engine_factory(blobs, settings)
        self._scorers = scorers or scorer_factory(blobs, settings)
        self._engine: Engine | None = None
        self._scorer: Scorer | None = None

    def _get_scorer(self) -> Scorer:
        if self._scorer is None:
            self._scorer = self._scorers(self.version)
        return self._scorer

    def _get_engine(self) -> Engine:
        if self._engine is None:
            self._engine = self._engines(self.version)
        return self._engine

    def loglikelihood(self, requests: list[Any]) -> list[tuple[float, bool]]:
        scorer = self._get_scorer()
        out = []
        for request in requests:
            context, continuation = request.args[0], request.args[1]
            scored = scorer.loglikelihood(context, continuation)
            out.append((scored.logprob, scored.is_greedy))
        return out

    def loglikelihood_rolling(self, requests: list[Any]) -> list[float]:
        """Whole-text log-likelihood, in windows of the scorer's context (BOS-started)."""
        scorer = self._get_scorer()
        bos = scorer.tokenize("", add_bos=True)
        size = max(scorer.context_length - len(bos), 1)
        out = []
        for request in requests:
            tokens = scorer.tokenize(request.args[0], add_bos=False)
            total = 0.0
            for start in range(0, len(tokens), size):
                total -= scorer.token_nll(bos + tokens[start : start + size]).nll
            out.append(total)
        return out

    def generate_until(self, requests: list[Any]) -> list[str]:
        engine = self._get_engine()
        out = []
        for request in requests:
            context, kwargs = request.args[0], dict(request.args[1] or {})
            until = kwargs.get("until") or []
            stops = tuple([until] if isinstance(until, str) else until)
            params = SamplingParams(
                max_tokens=int(kwargs.get("max_gen_toks", self.max_gen_toks)),
                temperature=0.0,
                seed=0,
                stop=stops,
            )
            text, _finish = collect(engine.complete(context, params))
            out.append(text)
        return out

    def close(self) -> None:
        for thing in (self._engine, self._scorer):
            if thing is not None:
                thing.close()
        self._runtime.close()


def register() -> None:
    """Make ``--model modelyard`` known to lm-eval (idempotent)."""
    if MODEL_NAME not in model_registry:
        model_registry.register(MODEL_NAME, target=ModelyardLM)


def main() -> None:
    """lm-eval's own CLI with the modelyard model registered."""
    from lm_eval.__main__ import cli_evaluate

    register()
    cli_evaluate()


if __name__ == "__main__":
    main()
