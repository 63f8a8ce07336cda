"""Small model files the tests make themselves: tiny GGUFs, safetensors directories, bad files."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np


def write_tiny_gguf(
    path: Path, *, arch: str = "llama", context: int = 256, licence: str | None = "apache-2.0"
) -> Path:
    import gguf

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name("tiny-test")
    writer.add_context_length(context)
    writer.add_embedding_length(8)
    writer.add_block_count(1)
    writer.add_head_count(2)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    if licence:
        writer.add_string("general.license", licence)
    writer.add_tokenizer_model("llama")
    writer.add_chat_template("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    writer.add_tensor("token_embd.weight", np.ones((16, 8), dtype=np.float32))
    writer.add_tensor("output_norm.weight", np.ones((8,), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def gguf_header_bytes(tensor_count: int, kv_count: int, version: int = 3) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, tensor_count, kv_count)


def write_gguf_with_huge_string(path: Path) -> Path:
    """A GGUF whose one metadata key claims a 2**64-1 byte string value."""
    key = b"general.name"
    body = struct.pack("<Q", len(key)) + key + struct.pack("<I", 8)  # type 8 = STRING
    body += struct.pack("<Q", 2**64 - 1) + b"x" * 64
    path.write_bytes(gguf_header_bytes(0, 1) + body + b"\0" * 256)
    return path


def write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> Path:
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    blobs = []
    for name, array in tensors.items():
        data = array.astype(np.float32).tobytes()
        header[name] = {
            "dtype": "F32",
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        offset += len(data)
        blobs.append(data)
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))
    return path


def make_hf_directory(root: Path, *, licence_text: str | None = "mit") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(
        json.dumps(
            {
                "architectures": ["LlamaForCausalLM"],
                "model_type": "llama",
                "max_position_embeddings": 512,
                "torch_dtype": "float32",
            }
        )
    )
    (root / "tokenizer.json").write_text(json.dumps({"model": {"type": "BPE"}}))
    (root / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "LlamaTokenizer", "chat_template": "{{ messages }}"})
    )
    if licence_text:
        (root / "README.md").write_text(f"---\nlicense: {licence_text}\n---\n# tiny\n")
    write_safetensors(
        root / "model.safetensors",
        {"embed.weight": np.ones((4, 3)), "norm.weight": np.zeros((3,))},
    )
    return root


def write_gguf_with_duplicate_vocab(source: Path, path: Path) -> Path:
    """A copy of a real GGUF whose vocabulary lists one token string twice.

    It parses as a GGUF (intake accepts it), but llama.cpp's loader asserts on it: the model
    that crashes whatever process loads it.
    """
    import shutil

    import gguf

    shutil.copyfile(source, path)
    reader = gguf.GGUFReader(str(path), "r+")
    field = reader.fields["tokenizer.ggml.tokens"]
    strings = [field.parts[i] for i in field.data]
    by_length: dict[int, int] = {}
    for index, data in enumerate(strings[1000:], start=1000):
        if len(data) in by_length:
            strings[index][:] = strings[by_length[len(data)]]
            break
        by_length[len(data)] = index
    reader.data.flush()
    del reader
    return path


def write_crafted_gguf(
    path: Path,
    *,
    floats: dict[str, float] | None = None,
    uints: dict[str, int] | None = None,
    tokens: list[str] | None = None,
    scores: list[float] | None = None,
    embedding_rows: int = 16,
) -> Path:
    """A small llama GGUF with chosen metadata on top of :func:`write_tiny_gguf`'s.

    ``uints`` override the architecture's integer keys (``llama.embedding_length``...),
    ``floats`` add float32 keys, ``tokens``/``scores`` add a vocabulary.
    """
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("crafted")
    ints = {
        "llama.context_length": 256,
        "llama.embedding_length": 8,
        "llama.block_count": 1,
        "llama.attention.head_count": 2,
        **(uints or {}),
    }
    for key, value in ints.items():
        writer.add_uint32(key, value)
    for key, number in (floats or {}).items():
        writer.add_float32(key, number)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    if tokens is not None:
        writer.add_token_list(tokens)
    if scores is not None:
        writer.add_token_scores(scores)
    writer.add_tensor("token_embd.weight", np.ones((embedding_rows, 8), dtype=np.float32))
    writer.add_tensor("output_norm.weight", np.ones((8,), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_safetensors_raw(path: Path, header: dict[str, object], data: bytes) -> Path:
    """A safetensors file with exactly this header and data area (for crafted layouts)."""
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def write_sentencepiece_model(path: Path, pieces: tuple[str, ...] = ("<unk>", "▁a", "b")) -> Path:
    """A SentencePiece ``ModelProto`` in protobuf wire format: pieces, then a trainer spec."""
    body = bytearray()
    for index, piece in enumerate(pieces):
        text = piece.encode()
        message = b"\x0a" + _varint(len(text)) + text  # piece (1, string)
        message += b"\x15" + struct.pack("<f", -float(index))  # score (2, float)
        message += b"\x18" + _varint(2 if index == 0 else 1)  # type (3, enum)
        body += b"\x0a" + _varint(len(message)) + message
    trainer = b"\x18\x01"  # model_type (3) = UNIGRAM
    body += b"\x12" + _varint(len(trainer)) + trainer
    path.write_bytes(bytes(body))
    return path
