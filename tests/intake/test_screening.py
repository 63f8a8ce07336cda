"""What intake lets into the store: the directory allowlist, content checks, crafted headers.

Every refusal goes through the real importer and must leave the store and registry exactly
as they were.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.errors import InvalidInput, UnsafeModel
from modelyard.intake.importer import import_path
from tests.conftest import store_snapshot
from tests.factories import (
    make_hf_directory,
    write_crafted_gguf,
    write_gguf_with_duplicate_vocab,
    write_safetensors_raw,
    write_sentencepiece_model,
)

PICKLE = pickle.dumps({"weights": [1.0, 2.0]}, protocol=4)


def _refused(registry: Registry, settings: Settings, path: Path, *messages: str) -> str:
    """Import ``path``, expect a refusal holding every message, and return its message."""
    before = store_snapshot(settings, registry)
    with pytest.raises((UnsafeModel, InvalidInput)) as caught:
        import_path(path, registry, settings)
    for message in messages:
        assert message in caught.value.message, caught.value.message
    assert store_snapshot(settings, registry) == before
    return caught.value.message


# -- the allowlist -----------------------------------------------------------------------


def test_full_directory_of_allowed_kinds_is_imported(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    root = make_hf_directory(tmp_path / "full")
    write_sentencepiece_model(root / "tokenizer.model")
    (root / "generation_config.json").write_text(json.dumps({"temperature": 0.7}))
    (root / "special_tokens_map.json").write_text(json.dumps({"bos_token": "<s>"}))
    (root / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"embed.weight": "model.safetensors"}})
    )
    (root / "merges.txt").write_text("#version: 0.2\na b\n")
    (root / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    (root / "LICENSE").write_text("Apache License\nVersion 2.0, January 2004\n")
    (root / "chat_template.jinja").write_text("{% for m in messages %}{{ m.content }}{% endfor %}")
    (root / ".gitattributes").write_text("*.safetensors filter=lfs\n")
    version = import_path(root, registry, settings)
    assert {f.path for f in version.files} == {
        "README.md",
        "LICENSE",
        "chat_template.jinja",
        "config.json",
        "generation_config.json",
        "merges.txt",
        "model.safetensors",
        "model.safetensors.index.json",
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer.model",
        "tokenizer_config.json",
        "vocab.txt",
    }
    assert version.metadata["chat_template"].startswith("{% for m in messages %}")


def test_a_tiktoken_tokenizer_model_is_accepted(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    root = make_hf_directory(tmp_path / "tiktoken")
    (root / "tokenizer.model").write_bytes(b"IQ== 0\nIg== 1\nIw== 2\nJA== 3\n")
    version = import_path(root, registry, settings)
    assert "tokenizer.model" in {f.path for f in version.files}


def test_every_file_outside_the_allowlist_is_refused_and_named(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    root = make_hf_directory(tmp_path / "smuggled")
    (root / "embeddings.npy").write_bytes(PICKLE)
    (root / "state.dat").write_bytes(PICKLE)
    (root / "weights.7z").write_bytes(b"7z\xbc\xaf\x27\x1c" + b"\0" * 32)
    (root / "extra").mkdir()
    (root / "extra" / "optimizer.pt").write_bytes(PICKLE)
    message = _refused(
        registry,
        settings,
        root,
        "4 file(s)",
        "embeddings.npy: not an allowed file kind",
        "state.dat: not an allowed file kind",
        "weights.7z: not an allowed file kind",
        "extra/optimizer.pt: .pt weights are Python pickles",
    )
    assert "config.json" not in message.split(":", 2)[-1]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("tokenizer.model", PICKLE, "tokenizer.model: it is not a SentencePiece model"),
        ("tokenizer.model", b"\x0a\xff\xff\xff\x7f" + b"x" * 10, "not a SentencePiece model"),
        ("vocab.json", PICKLE, "vocab.json: it is not valid JSON"),
        ("special_tokens_map.json", b"{'bos': 1}", "it is not valid JSON"),
        ("merges.txt", PICKLE, "merges.txt: it is named as text but holds binary data"),
        ("README.md", b"\xff\xfe\x00\x00", "README.md"),
        ("chat_template.jinja", b"\xc3\x28 bad utf-8", "chat_template.jinja: it is named as text"),
    ],
    ids=[
        "pickle tokenizer.model",
        "protobuf field past the end",
        "pickle vocab.json",
        "python literal json",
        "pickle merges.txt",
        "utf-32 readme",
        "bad utf-8 template",
    ],
)
def test_content_must_match_the_kind_its_name_claims(
    name: str,
    content: bytes,
    message: str,
    registry: Registry,
    settings: Settings,
    tmp_path: Path,
) -> None:
    root = make_hf_directory(tmp_path / "mislabelled")
    (root / name).write_bytes(content)
    _refused(registry, settings, root, message)


@pytest.mark.parametrize("config", ["config.json", "tokenizer_config.json"])
def test_auto_map_is_refused_in_any_config(
    config: str, registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    root = make_hf_directory(tmp_path / "remote-code")
    value = json.loads((root / config).read_text())
    value["auto_map"] = {"AutoTokenizer": ["tokenization_x.XTokenizer", None]}
    (root / config).write_text(json.dumps(value))
    _refused(registry, settings, root, f"{config}: it has auto_map")


# -- safetensors layout --------------------------------------------------------------------


def _weights_case(tmp_path: Path, header: dict[str, object], data: bytes) -> Path:
    root = make_hf_directory(tmp_path / "crafted")
    write_safetensors_raw(root / "model.safetensors", header, data)
    return root


F32_2x2 = {"dtype": "F32", "shape": [2, 2]}
ST_CASES: dict[str, tuple[dict[str, object], bytes, str]] = {
    "overlap": (
        {"a": {**F32_2x2, "data_offsets": [0, 16]}, "b": {**F32_2x2, "data_offsets": [8, 24]}},
        b"\0" * 24,
        "overlaps tensor 'a'",
    ),
    "aliased": (
        {"a": {**F32_2x2, "data_offsets": [0, 16]}, "b": {**F32_2x2, "data_offsets": [0, 16]}},
        b"\0" * 16,
        "overlaps",
    ),
    "gap": (
        {"a": {**F32_2x2, "data_offsets": [0, 16]}, "b": {**F32_2x2, "data_offsets": [20, 36]}},
        b"\0" * 36,
        "4 unaccounted bytes before tensor 'b'",
    ),
    "past the end": (
        {"a": {**F32_2x2, "data_offsets": [0, 16]}},
        b"\0" * 8,
        "points outside the file",
    ),
    "dtype x shape": (
        {"a": {"dtype": "BF16", "shape": [4, 4], "data_offsets": [0, 16]}},
        b"\0" * 16,
        "BF16 x [4, 4] needs 32",
    ),
    "bool offsets": (
        {"a": {**F32_2x2, "data_offsets": [False, 16]}},
        b"\0" * 16,
        "points outside the file",
    ),
    "metadata not strings": (
        {"__metadata__": {"format": 1}, "a": {**F32_2x2, "data_offsets": [0, 16]}},
        b"\0" * 16,
        "__metadata__ must map strings to strings",
    ),
}


@pytest.mark.parametrize("case", list(ST_CASES))
def test_crafted_safetensors_layouts_are_refused(
    case: str, registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    header, data, message = ST_CASES[case]
    _refused(registry, settings, _weights_case(tmp_path, header, data), message)


# -- hostile JSON -------------------------------------------------------------------------

HOSTILE_JSON: dict[str, tuple[bytes, str]] = {
    "nested 100k deep": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    "nested 500 deep": (b'{"a":' * 500 + b"1" + b"}" * 500, "nested more than 64 levels"),
    "100k-digit integer": (b'{"n": ' + b"9" * 100_000 + b"}", "an integer of 100000 digits"),
    "float overflow": (b'{"rope_theta": 1e999}', "out of range"),
    "NaN": (b'{"rope_theta": NaN}', "NaN is not a JSON number"),
}


@pytest.mark.parametrize("case", list(HOSTILE_JSON))
@pytest.mark.parametrize("where", ["config.json", "tokenizer_config.json", "safetensors header"])
def test_hostile_json_is_a_clean_refusal(
    case: str, where: str, registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    raw, message = HOSTILE_JSON[case]
    root = make_hf_directory(tmp_path / "hostile")
    if where == "safetensors header":
        (root / "model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw)
    else:
        (root / where).write_bytes(raw)
    _refused(registry, settings, root, message)


# -- GGUF metadata sanity -----------------------------------------------------------------

TOKENS = ["<unk>", "<s>", "</s>", "a", "b"]
GGUFCase = Callable[[Path], Path]
GGUF_CASES: dict[str, tuple[GGUFCase, str]] = {
    "NaN hyperparameter": (
        lambda p: write_crafted_gguf(p, floats={"llama.rope.freq_base": math.nan}),
        "metadata llama.rope.freq_base is not a finite number",
    ),
    "inf hyperparameter": (
        lambda p: write_crafted_gguf(
            p, floats={"llama.attention.layer_norm_rms_epsilon": math.inf}
        ),
        "llama.attention.layer_norm_rms_epsilon is not a finite number",
    ),
    "NaN score": (
        lambda p: write_crafted_gguf(p, tokens=TOKENS, scores=[0.0, 0.0, 0.0, math.nan, 0.0]),
        "tokenizer.ggml.scores holds NaN",
    ),
    "duplicate token": (
        lambda p: write_crafted_gguf(p, tokens=[*TOKENS, "a"]),
        "tokenizer.ggml.tokens lists token b'a' twice (entries 3 and 5)",
    ),
    "scores shorter than vocabulary": (
        lambda p: write_crafted_gguf(p, tokens=TOKENS, scores=[0.0, 0.0]),
        "tokenizer.ggml.scores has 2 entries for 5 tokens",
    ),
    "absurd embedding x vocabulary": (
        lambda p: write_crafted_gguf(
            p, tokens=TOKENS, uints={"llama.embedding_length": 4_000_000_000}
        ),
        "llama.embedding_length (4000000000) x 5 tokens",
    ),
    "absurd context": (
        lambda p: write_crafted_gguf(p, uints={"llama.context_length": 2**31}),
        "llama.context_length is 2147483648",
    ),
    "block count beyond tensors": (
        lambda p: write_crafted_gguf(p, uints={"llama.block_count": 1000}),
        "llama.block_count is 1000",
    ),
    "zero heads": (
        lambda p: write_crafted_gguf(p, uints={"llama.attention.head_count": 0}),
        "llama.attention.head_count is 0",
    ),
}


@pytest.mark.parametrize("case", list(GGUF_CASES))
def test_gguf_metadata_sanity(
    case: str, registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    build, message = GGUF_CASES[case]
    _refused(registry, settings, build(tmp_path / "crafted.gguf"), "crafted.gguf", message)


def test_duplicate_vocabulary_of_the_real_model_is_refused(
    default_gguf: Path, registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    """The file that makes llama.cpp abort: refused at intake, naming the field."""
    crafted = write_gguf_with_duplicate_vocab(default_gguf, tmp_path / "gemma-dup.gguf")
    _refused(registry, settings, crafted, "tokenizer.ggml.tokens lists token")


def test_overlapping_gguf_tensors_are_refused(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    import gguf

    path = write_crafted_gguf(tmp_path / "overlap.gguf")
    reader = gguf.GGUFReader(str(path), "r+")
    first, second = reader.tensors
    second.field.parts[5][0] = first.field.parts[5][0]  # both tensors start at one offset
    reader.data.flush()
    del reader
    _refused(registry, settings, path, "overlap")


@pytest.mark.slow
def test_cli_refuses_a_smuggled_pickle_and_a_json_bomb(tmp_path: Path) -> None:
    """The real command: exit 1, one line naming every refused file, nothing stored."""
    root = make_hf_directory(tmp_path / "smuggled")
    (root / "weights.npy").write_bytes(PICKLE)
    (root / "archive.7z").write_bytes(b"7z\xbc\xaf\x27\x1c")
    bomb = make_hf_directory(tmp_path / "bomb")
    (bomb / "tokenizer_config.json").write_bytes(b"[" * 200_000 + b"]" * 200_000)
    home = tmp_path / "home"
    env = {
        **os.environ,
        "MODELYARD_HOME": str(home),
        "MODELYARD_DATABASE_URL": "",
        "COLUMNS": "1000",
    }
    for directory, expected in (
        (root, ["weights.npy: not an allowed file kind", "archive.7z: not an allowed file kind"]),
        (bomb, ["tokenizer_config.json: its JSON is nested too deeply"]),
    ):
        completed = subprocess.run(
            [sys.executable, "-m", "modelyard", "models", "import", str(directory)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert completed.returncode == 1, completed.stderr
        assert "Traceback" not in completed.stderr
        for message in expected:
            assert message in completed.stderr
    blobs = home / "blobs" / "sha256"
    assert not blobs.exists() or not any(blobs.rglob("*"))
