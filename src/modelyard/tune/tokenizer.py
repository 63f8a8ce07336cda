"""The serving tokenizer: llama.cpp's, loaded from the base GGUF's vocabulary only.

Training with the exact tokenizer that will later serve the model means the answer tokens
the loss sees are the ones the engine produces; loading the vocabulary alone takes a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelyard.errors import EngineFault
from modelyard.tune.native_log import captured_stderr


class GGUFTokenizer:
    def __init__(self, model_path: Path) -> None:
        import llama_cpp

        try:
            with captured_stderr():  # llama.cpp warns about the missing context on stderr
                self._llm: Any = llama_cpp.Llama(
                    model_path=str(model_path), vocab_only=True, verbose=False
                )
        except (ValueError, RuntimeError) as exc:
            raise EngineFault(f"llama.cpp could not read the vocabulary: {exc}") from exc
        self.eos_id = int(self._llm.token_eos())

    def encode(self, text: str, *, add_bos: bool, special: bool = True) -> list[int]:
        """Token ids of ``text``; ``special=False`` reads control-token strings in it as
        plain text (how message text in a chat prompt is tokenized)."""
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special))

    def close(self) -> None:
        self._llm.close()
