"""What intake refuses outright, by file name: formats that can run code when loaded."""

from __future__ import annotations

from pathlib import PurePath

from modelyard.errors import UnsafeModel

PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib"})
CODE_SUFFIXES = frozenset({".py", ".pyc", ".so", ".dll", ".dylib", ".exe", ".sh"})


def unsafe_name_reason(path: PurePath) -> str | None:
    """Why a file of this name can run code when loaded, or None when its suffix says nothing."""
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        return (
            f"{suffix} weights are Python pickles, which can run arbitrary code when loaded; "
            "convert the model to safetensors or GGUF first"
        )
    if suffix in CODE_SUFFIXES:
        return (
            f"the model ships code ({suffix}); modelyard does not import models that need "
            "custom code to load"
        )
    return None


def refuse_unsafe_name(path: PurePath, *, shown: str | None = None) -> None:
    reason = unsafe_name_reason(path)
    if reason is not None:
        raise UnsafeModel(f"refused {shown or path.name}: {reason}")
