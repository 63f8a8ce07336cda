"""What intake refuses outright, by file name: formats that can run code when loaded."""

from __future__ import annotations

from pathlib import PurePath

from modelyard.errors import UnsafeModel

PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib"})
CODE_SUFFIXES = frozenset({".py", ".pyc", ".so", ".dll", ".dylib", ".exe", ".sh"})


def refuse_unsafe_name(path: PurePath, *, shown: str | None = None) -> None:
    suffix = path.suffix.lower()
    label = shown or path.name
    if suffix in PICKLE_SUFFIXES:
        raise UnsafeModel(
            f"refused {label}: {suffix} weights are Python pickles, which can run arbitrary "
            "code when loaded; convert the model to safetensors or GGUF first"
        )
    if suffix in CODE_SUFFIXES:
        raise UnsafeModel(
            f"refused {label}: the model ships code ({suffix}); modelyard does not import "
            "models that need custom code to load"
        )
