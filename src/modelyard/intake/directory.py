"""Scan and describe a Hugging Face model directory (config.json, tokenizer, safetensors).

Two steps, on two different sets of bytes:

* :func:`scan_directory` looks at names only: every file must be an allowed kind
  (:mod:`file_kinds`), no symlink may lead outside, and every refused file is listed in one
  error. It records each file's identity (device, inode) so that the file opened later for
  the copy is the one scanned.
* :func:`describe_directory` reads the copies already landed in the blob store, never the
  source: each file's content must match its kind, then the metadata is gathered.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelyard.errors import UnsafeModel
from modelyard.intake import file_kinds, licence
from modelyard.intake.safety import unsafe_name_reason


@dataclass(frozen=True)
class ScannedFile:
    relpath: str
    path: Path
    """Where to open it: the file itself, or a symlink's target inside the directory."""
    size_bytes: int
    kind: str = "gguf"
    identity: tuple[int, int] | None = None
    """(st_dev, st_ino) when scanned; the file opened for the copy must still be this one."""


def scan_directory(root: Path) -> list[ScannedFile]:
    """Every file to import; refuses the directory, naming every file not allowed in it.

    Hidden entries (``.git``, ``.gitattributes``, ``.cache``) are skipped, not imported.
    """
    root_real = Path(os.path.realpath(root))
    found: list[ScannedFile] = []
    refused: list[str] = []
    for current, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(current)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for dirname in dirnames:
            if reason := _escape_reason(here / dirname, root_real):
                refused.append(f"{(here / dirname).relative_to(root).as_posix()}: {reason}")
        for filename in sorted(filenames):
            if filename.startswith("."):
                continue
            path = here / filename
            relpath = path.relative_to(root).as_posix()
            scanned, reason = _scan_file(path, relpath, root_real)
            if scanned is None:
                refused.append(f"{relpath}: {reason}")
            else:
                found.append(scanned)
    if refused:
        listing = "; ".join(refused)
        raise UnsafeModel(
            f"refused {root}: {len(refused)} file(s) are not part of a safetensors model "
            f"(allowed: *.safetensors, *.json, tokenizer.model, *.md, *.txt, *.jinja, "
            f"LICENSE/NOTICE): {listing}"
        )
    return found


def _scan_file(path: Path, relpath: str, root_real: Path) -> tuple[ScannedFile | None, str]:
    if reason := _escape_reason(path, root_real):
        return None, reason
    if reason := unsafe_name_reason(path):
        return None, reason
    kind = file_kinds.kind_of(relpath)
    if kind is None:
        return None, "not an allowed file kind"
    target = Path(os.path.realpath(path))
    try:
        info = os.stat(target, follow_symlinks=False)
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror})"
    if not stat.S_ISREG(info.st_mode):
        return None, "not a regular file"
    return ScannedFile(relpath, target, info.st_size, kind, (info.st_dev, info.st_ino)), ""


def _escape_reason(path: Path, root_real: Path) -> str | None:
    if not path.is_symlink():
        return None
    target = Path(os.path.realpath(path))
    if target != root_real and root_real not in target.parents:
        return f"it is a symlink leading outside the model directory (to {target})"
    return None


def describe_directory(
    label: str, files: list[ScannedFile], copies: Mapping[str, Path]
) -> dict[str, Any]:
    """Check every landed copy against its kind and gather the model's metadata.

    ``copies`` maps each file's relpath to its copy in the store; only those are read.
    """
    parsed: dict[str, Any] = {}
    texts: dict[str, str] = {}
    params = 0
    dtypes: dict[str, int] = {}
    problems: list[str] = []
    for scanned in files:
        try:
            with copies[scanned.relpath].open("rb") as handle:
                if scanned.kind == "json":
                    parsed[scanned.relpath] = file_kinds.check_json(handle, scanned.relpath)
                elif scanned.kind == "text":
                    texts[scanned.relpath] = file_kinds.check_text(handle, scanned.relpath)
                elif scanned.kind == "sentencepiece":
                    file_kinds.check_sentencepiece(handle, scanned.relpath)
                else:
                    summary = file_kinds.check_weights(handle, scanned.relpath)
                    params += summary.parameters
                    for dtype, count in summary.dtypes.items():
                        dtypes[dtype] = dtypes.get(dtype, 0) + count
        except UnsafeModel as exc:
            problems.append(exc.message.removeprefix("refused "))
    if problems:
        raise UnsafeModel(f"refused {label}: " + "; ".join(problems))
    config = parsed.get("config.json")
    if config is None:
        raise UnsafeModel(f"{label} is not a model directory: config.json is missing")
    if not isinstance(config, dict):
        raise UnsafeModel(f"refused {label}: config.json is not a JSON object")
    if not any(f.kind == "safetensors" for f in files):
        raise UnsafeModel(f"{label} has no .safetensors weights")
    tokenizer_config = parsed.get("tokenizer_config.json")
    if not isinstance(tokenizer_config, dict):
        tokenizer_config = {}
    chat_template = texts.get("chat_template.jinja", tokenizer_config.get("chat_template"))
    quant_cfg = config.get("quantization_config")
    quant_method = quant_cfg.get("quant_method") if isinstance(quant_cfg, dict) else None
    return {
        "architecture": _text(config.get("model_type")) or "unknown",
        "architectures": config.get("architectures") or [],
        "parameters": params,
        "context_length": _first(
            config, "max_position_embeddings", "n_positions", "seq_length", "max_seq_len"
        ),
        "quantization": quant_method
        or (max(dtypes, key=lambda d: dtypes[d]) if dtypes else "unknown"),
        "tensor_types": dtypes,
        "torch_dtype": config.get("torch_dtype") or config.get("dtype"),
        "tokenizer": _text(tokenizer_config.get("tokenizer_class"))
        or ("tokenizer.json" if "tokenizer.json" in parsed else None),
        "chat_template": chat_template if isinstance(chat_template, str) else None,
        "license": licence.detect_in_texts(texts),
        "weight_files": sum(1 for f in files if f.kind == "safetensors"),
    }


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _first(config: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if isinstance(config.get(key), int):
            return config[key]
    text_config = config.get("text_config")
    if isinstance(text_config, dict):
        return _first(text_config, *keys)
    return None
