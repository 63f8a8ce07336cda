"""The allowlist of files a safetensors model directory may hold, and a content check per kind.

A Hugging Face directory is screened by what it may contain, not by what it may not: every
file must be one of the kinds below, by name, *and* its bytes must be that kind. Anything
else (a pickle named ``.npy`` or ``.dat``, an archive, an image, a binary that calls itself
``vocab.txt``) is refused by name.

=============  ===========================================================  ==================
kind           names                                                         content check
=============  ===========================================================  ==================
safetensors    ``*.safetensors``                                             header and layout
json           ``*.json`` (config, generation config, tokenizer, index)      bounded JSON
sentencepiece  ``tokenizer.model``, ``spiece.model``, ``sentencepiece*.model``  protobuf/tiktoken
text           ``*.md``, ``*.txt``, ``*.jinja``, ``LICENSE``, ``NOTICE``…       UTF-8, no NUL
=============  ===========================================================  ==================
"""

from __future__ import annotations

import re
from pathlib import PurePath
from typing import Any, BinaryIO

from modelyard.errors import UnsafeModel
from modelyard.intake import safe_json
from modelyard.intake.safetensors_header import SafetensorsSummary, check_safetensors

MAX_JSON_BYTES = 64 * 1024 * 1024
MAX_TEXT_BYTES = 64 * 1024 * 1024
MAX_SENTENCEPIECE_BYTES = 64 * 1024 * 1024

SENTENCEPIECE_NAMES = frozenset({"tokenizer.model", "spiece.model", "sentencepiece.model"})
TIKTOKEN_FILE = re.compile(
    rb"(?:[A-Za-z0-9+/]+={0,2} [0-9]{1,10}\n)*[A-Za-z0-9+/]+={0,2} [0-9]{1,10}\n?"
)
TEXT_SUFFIXES = frozenset({".md", ".txt", ".jinja"})
TEXT_STEMS = frozenset({"license", "licence", "notice", "copying", "readme", "use_policy"})


def kind_of(relpath: str) -> str | None:
    """The allowed kind a file of this name must be, or None when the name is not allowed."""
    name = PurePath(relpath).name
    lower = name.lower()
    suffix = PurePath(lower).suffix
    if suffix == ".safetensors":
        return "safetensors"
    if suffix == ".json":
        return "json"
    if lower in SENTENCEPIECE_NAMES or (lower.startswith("sentencepiece") and suffix == ".model"):
        return "sentencepiece"
    if suffix in TEXT_SUFFIXES or PurePath(lower).stem in TEXT_STEMS:
        return "text"
    return None


def check_json(handle: BinaryIO, shown: str) -> Any:
    """The parsed JSON value of ``handle``; top-level ``auto_map`` (remote code) is refused."""
    value = safe_json.loads(
        _read(handle, MAX_JSON_BYTES, shown), what=shown, max_bytes=MAX_JSON_BYTES
    )
    if isinstance(value, dict) and "auto_map" in value:
        raise UnsafeModel(
            f"refused {shown}: it has auto_map, so loading the model would run the model's "
            "own Python code"
        )
    return value


def check_text(handle: BinaryIO, shown: str) -> str:
    raw = _read(handle, MAX_TEXT_BYTES, shown)
    if b"\0" in raw:
        raise UnsafeModel(f"refused {shown}: it is named as text but holds binary data")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnsafeModel(f"refused {shown}: it is named as text but is not UTF-8") from exc


def check_sentencepiece(handle: BinaryIO, shown: str) -> None:
    """A SentencePiece model is a protobuf ``ModelProto``: walk its wire format to the end.

    The first field must be ``pieces`` (field 1, length-delimited, byte ``0x0a``) and every
    field must end inside the file; a pickle (``0x80``…) or any other format fails. A tiktoken
    rank file (lines of ``BASE64 RANK``, also shipped as ``tokenizer.model``) is accepted too.
    """
    data = _read(handle, MAX_SENTENCEPIECE_BYTES, shown)
    bad = f"refused {shown}: it is not a SentencePiece model"
    if data and TIKTOKEN_FILE.fullmatch(data):
        return  # the other tokenizer.model: tiktoken's text ranks (base64 token, rank)
    if not data or data[0] != 0x0A:
        raise UnsafeModel(f"{bad} (first bytes {data[:4]!r})")
    pos, pieces = 0, 0
    while pos < len(data):
        key, pos = _varint(data, pos, bad)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise UnsafeModel(f"{bad} (field number 0 at byte {pos})")
        if wire == 0:
            _, pos = _varint(data, pos, bad)
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length, pos = _varint(data, pos, bad)
            pos += length
        elif wire == 5:
            pos += 4
        else:
            raise UnsafeModel(f"{bad} (wire type {wire} at byte {pos})")
        if pos > len(data):
            raise UnsafeModel(f"{bad} (a field runs past the end)")
        pieces += field == 1
    if pieces == 0:
        raise UnsafeModel(f"{bad} (no pieces)")


def check_weights(handle: BinaryIO, shown: str) -> SafetensorsSummary:
    return check_safetensors(handle, shown)


def _varint(data: bytes, pos: int, bad: str) -> tuple[int, int]:
    value = 0
    for shift in range(0, 70, 7):
        if pos >= len(data):
            raise UnsafeModel(f"{bad} (truncated)")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
    raise UnsafeModel(f"{bad} (a varint longer than 10 bytes)")


def _read(handle: BinaryIO, limit: int, shown: str) -> bytes:
    handle.seek(0)
    raw = handle.read(limit + 1)
    if len(raw) > limit:
        raise UnsafeModel(f"refused {shown}: larger than {limit} bytes")
    return raw
