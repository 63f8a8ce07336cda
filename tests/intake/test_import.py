"""Intake against SQLite and PostgreSQL: good imports, and every refusal leaving no trace."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest

from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.errors import Conflict, InvalidInput, UnsafeModel
from modelyard.intake.importer import import_path
from tests.conftest import store_snapshot
from tests.factories import (
    gguf_header_bytes,
    make_hf_directory,
    write_gguf_with_huge_string,
    write_tiny_gguf,
)


def test_import_gguf_records_metadata(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    source = write_tiny_gguf(tmp_path / "Tiny-Model.gguf")
    version = import_path(source, registry, settings)
    assert version.ref == "tiny-model@1"
    assert version.format == "gguf"
    meta = version.metadata
    assert meta["architecture"] == "llama"
    assert meta["parameters"] == 16 * 8 + 8
    assert meta["context_length"] == 256
    assert meta["quantization"] == "F32"
    assert meta["tokenizer"] == "llama"
    assert meta["license"] == "apache-2.0"
    assert "messages" in meta["chat_template"]
    assert meta["file_size"] == source.stat().st_size
    assert version.source_path == str(source)
    assert version.lineage == {"origin": "imported"}
    blob = registry.blobs.path_for(version.digest)
    assert blob.read_bytes() == source.read_bytes()


def test_same_bytes_are_stored_once_and_versions_count_up(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    source = write_tiny_gguf(tmp_path / "a.gguf")
    first = import_path(source, registry, settings, name="tiny")
    with pytest.raises(Conflict, match=r"tiny@1 already has these bytes.*--new-version"):
        import_path(source, registry, settings, name="tiny")
    assert [v.ref for v in registry.list_versions("tiny")] == ["tiny@1"]
    second = import_path(source, registry, settings, name="tiny", new_version=True)
    other = import_path(source, registry, settings, name="other")
    assert (first.version, second.version, other.version) == (1, 2, 1)
    assert first.digest == second.digest == other.digest
    assert registry.blobs.all_hashes() == {first.digest}
    assert registry.get("tiny").version == 2
    assert registry.get("tiny@1").digest == first.digest


def test_unknown_licence_is_recorded_as_unknown(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    source = write_tiny_gguf(tmp_path / "nolic.gguf", licence=None)
    assert import_path(source, registry, settings).metadata["license"] == "unknown"


def test_import_safetensors_directory(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    root = make_hf_directory(tmp_path / "TinyHF")
    version = import_path(root, registry, settings)
    assert version.ref == "tinyhf@1"
    assert version.format == "safetensors"
    assert version.metadata["parameters"] == 4 * 3 + 3
    assert version.metadata["context_length"] == 512
    assert version.metadata["license"] == "mit"
    assert version.metadata["tokenizer"] == "LlamaTokenizer"
    assert version.metadata["chat_template"] == "{{ messages }}"
    assert {f.path for f in version.files} == {
        "README.md",
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    }
    for entry in version.files:
        assert (
            registry.blobs.path_for(entry.sha256).read_bytes() == (root / entry.path).read_bytes()
        )


def test_licence_from_licence_file(registry: Registry, settings: Settings, tmp_path: Path) -> None:
    root = make_hf_directory(tmp_path / "apache", licence_text=None)
    (root / "LICENSE").write_text("Apache License\nVersion 2.0, January 2004\n...")
    assert import_path(root, registry, settings).metadata["license"] == "apache-2.0"


# -- refusals: each leaves the store and registry exactly as before -----------------------


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str | None, str]]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    good = write_tiny_gguf(tmp_path / "good.gguf")
    data = good.read_bytes()
    cases: dict[str, tuple[Path, str | None, str]] = {}

    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(data[: len(data) // 2])
    cases["truncated"] = (truncated, None, "truncated|not a valid GGUF")

    short = tmp_path / "short.gguf"
    short.write_bytes(data[:10])
    cases["truncated header"] = (short, None, "truncated")

    wrong = tmp_path / "wrong.gguf"
    wrong.write_bytes(b"GGML" + data[4:])
    cases["wrong magic"] = (wrong, None, "not a GGUF file")

    huge = tmp_path / "huge-tensors.gguf"
    huge.write_bytes(gguf_header_bytes(2**63, 0) + b"\0" * 1024)
    cases["2^63 tensors"] = (huge, None, "implausible GGUF header")

    cases["2^64-byte string"] = (
        write_gguf_with_huge_string(tmp_path / "huge-string.gguf"),
        None,
        "not a valid GGUF",
    )

    pickled = tmp_path / "pickled.gguf"
    pickled.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    cases["pickle renamed .gguf"] = (pickled, None, "Python pickle")

    for suffix in (".bin", ".pt", ".pth", ".ckpt", ".pkl"):
        weights = tmp_path / f"weights{suffix}"
        weights.write_bytes(b"\x80\x04anything")
        cases[f"pickle {suffix}"] = (weights, None, "pickles")

    with_code = make_hf_directory(tmp_path / "with-code")
    (with_code / "modeling_x.py").write_text("import os\n")
    cases["modeling_x.py"] = (with_code, None, "ships code")

    auto_map = make_hf_directory(tmp_path / "auto-map")
    config = json.loads((auto_map / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_x.Model"}
    (auto_map / "config.json").write_text(json.dumps(config))
    cases["auto_map"] = (auto_map, None, "auto_map")

    pickled_dir = make_hf_directory(tmp_path / "pickled-dir")
    (pickled_dir / "pytorch_model.bin").write_bytes(b"\x80\x04")
    cases["directory with .bin"] = (pickled_dir, None, "pickles")

    escape = make_hf_directory(tmp_path / "escape")
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    os.symlink(secret, escape / "notes.txt")
    cases["symlink escape"] = (escape, None, "symlink leading outside")

    escape_dir = make_hf_directory(tmp_path / "escape-dir")
    os.symlink(tmp_path, escape_dir / "up")
    cases["symlinked directory escape"] = (escape_dir, None, "symlink leading outside")

    bad_st = make_hf_directory(tmp_path / "bad-safetensors")
    st = bad_st / "model.safetensors"
    st.write_bytes(st.read_bytes()[:-5])
    cases["truncated safetensors"] = (bad_st, None, "truncated")

    no_config = make_hf_directory(tmp_path / "no-config")
    (no_config / "config.json").unlink()
    cases["no config.json"] = (no_config, None, "config.json is missing")

    for label, name in {"../x": "../x", "a/b": "a/b", "absolute": "/etc/passwd"}.items():
        cases[f"name {label}"] = (good, name, "invalid model name")
    return cases


CASE_NAMES = [
    "truncated",
    "truncated header",
    "wrong magic",
    "2^63 tensors",
    "2^64-byte string",
    "pickle renamed .gguf",
    "pickle .bin",
    "pickle .pt",
    "pickle .pth",
    "pickle .ckpt",
    "pickle .pkl",
    "modeling_x.py",
    "auto_map",
    "directory with .bin",
    "symlink escape",
    "symlinked directory escape",
    "truncated safetensors",
    "no config.json",
    "name ../x",
    "name a/b",
    "name absolute",
]


@pytest.mark.parametrize("case", CASE_NAMES)
def test_refusals_leave_no_trace(
    case: str, registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    import_path(write_tiny_gguf(tmp_path / "existing.gguf"), registry, settings)
    before = store_snapshot(settings, registry)
    path, name, message = _bad_inputs(tmp_path / "cases")[case]
    with pytest.raises((UnsafeModel, InvalidInput), match=message):
        import_path(path, registry, settings, name=name)
    assert store_snapshot(settings, registry) == before


def test_import_killed_mid_copy_leaves_no_trace(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    import_path(write_tiny_gguf(tmp_path / "existing.gguf"), registry, settings)
    before = store_snapshot(settings, registry)
    root = make_hf_directory(tmp_path / "dir")
    copied: list[int] = []

    def progress(label: str, total: int):  # type: ignore[no-untyped-def]
        def advance(n: int) -> None:
            copied.append(n)
            if len(copied) == 3:  # a few files in: the first blobs are already stored
                raise KeyboardInterrupt("killed mid-copy")

        return advance

    with pytest.raises(KeyboardInterrupt):
        import_path(root, registry, settings, progress=progress)
    assert store_snapshot(settings, registry) == before


def test_missing_path(registry: Registry, settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no such file"):
        import_path(tmp_path / "nope.gguf", registry, settings)


def test_symlink_inside_directory_is_allowed(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    root = make_hf_directory(tmp_path / "inner-link")
    shutil.copy(root / "README.md", root / "MODEL_CARD.md")
    (root / "MODEL_CARD.md").unlink()
    os.symlink(root / "README.md", root / "MODEL_CARD.md")
    version = import_path(root, registry, settings)
    assert "MODEL_CARD.md" in {f.path for f in version.files}
