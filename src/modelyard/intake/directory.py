"""Scan and describe a Hugging Face model directory (config.json, tokenizer, safetensors)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelyard.errors import UnsafeModel
from modelyard.intake import licence
from modelyard.intake.safetensors_header import read_safetensors_header
from modelyard.intake.safety import refuse_unsafe_name

MAX_CONFIG_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class ScannedFile:
    relpath: str
    path: Path
    size_bytes: int


def scan_directory(root: Path) -> list[ScannedFile]:
    """Every regular file to import, after refusing anything unsafe. Hidden entries are skipped."""
    root_real = Path(os.path.realpath(root))
    found: list[ScannedFile] = []
    for current, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(current)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for dirname in dirnames:
            _refuse_escape(here / dirname, root, root_real)
        for filename in sorted(filenames):
            if filename.startswith("."):
                continue
            path = here / filename
            relpath = path.relative_to(root).as_posix()
            _refuse_escape(path, root, root_real)
            refuse_unsafe_name(path, shown=relpath)
            if not path.is_file():
                raise UnsafeModel(f"refused {relpath}: not a regular file")
            found.append(ScannedFile(relpath, path, path.stat().st_size))
    return found


def _refuse_escape(path: Path, root: Path, root_real: Path) -> None:
    if not path.is_symlink():
        return
    target = Path(os.path.realpath(path))
    if target != root_real and root_real not in target.parents:
        raise UnsafeModel(
            f"refused {path.relative_to(root).as_posix()}: it is a symlink leading outside "
            f"{root} (to {target})"
        )


def describe_directory(root: Path, files: list[ScannedFile]) -> dict[str, Any]:
    by_name = {f.relpath: f for f in files}
    if "config.json" not in by_name:
        raise UnsafeModel(f"{root} is not a model directory: config.json is missing")
    config = _read_json(by_name["config.json"].path)
    if "auto_map" in config:
        raise UnsafeModel(
            f"refused {root}: config.json has auto_map, so loading it would run the "
            "model's own Python code"
        )
    weights = [f for f in files if f.relpath.endswith(".safetensors")]
    if not weights:
        raise UnsafeModel(f"{root} has no .safetensors weights")
    params = 0
    dtypes: dict[str, int] = {}
    for weight in weights:
        summary = read_safetensors_header(weight.path)
        params += summary.parameters
        for dtype, count in summary.dtypes.items():
            dtypes[dtype] = dtypes.get(dtype, 0) + count

    tokenizer_config = (
        _read_json(by_name["tokenizer_config.json"].path)
        if "tokenizer_config.json" in by_name
        else {}
    )
    chat_template = tokenizer_config.get("chat_template")
    if "chat_template.jinja" in by_name:
        chat_template = by_name["chat_template.jinja"].path.read_text(errors="replace")
    architectures = config.get("architectures") or []
    quant_cfg = config.get("quantization_config") or {}
    return {
        "architecture": config.get("model_type") or "unknown",
        "architectures": architectures,
        "parameters": params,
        "context_length": _first(
            config, "max_position_embeddings", "n_positions", "seq_length", "max_seq_len"
        ),
        "quantization": quant_cfg.get("quant_method")
        or (max(dtypes, key=lambda d: dtypes[d]) if dtypes else "unknown"),
        "tensor_types": dtypes,
        "torch_dtype": config.get("torch_dtype") or config.get("dtype"),
        "tokenizer": tokenizer_config.get("tokenizer_class")
        or ("tokenizer.json" if "tokenizer.json" in by_name else None),
        "chat_template": chat_template if isinstance(chat_template, str) else None,
        "license": licence.detect_in_directory(root),
        "weight_files": len(weights),
    }


def _first(config: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if isinstance(config.get(key), int):
            return config[key]
    text_config = config.get("text_config")
    if isinstance(text_config, dict):
        return _first(text_config, *keys)
    return None


def _read_json(path: Path) -> dict[str, Any]:
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise UnsafeModel(f"refused {path.name}: larger than {MAX_CONFIG_BYTES} bytes")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnsafeModel(f"{path.name} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise UnsafeModel(f"{path.name} is not a JSON object")
    return value
