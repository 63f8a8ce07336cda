"""Structured property tests for the safetensors header check and the bounded JSON parser.

Byte-level fuzzing (test_readers.py) rarely writes valid JSON with a wrong type in it;
hypothesis builds headers that are JSON but wrong in every way a header can be, and whole
documents of any shape. The property: a summary that agrees with the file, or UnsafeModel.
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard.errors import UnsafeModel
from modelyard.intake import safe_json
from modelyard.intake.safetensors_header import DTYPE_BYTES, check_safetensors

FUZZ = settings(max_examples=300, deadline=None, database=None, derandomize=True)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
small_ints = st.integers(-2, 64) | st.booleans()
tensor_info = (
    st.fixed_dictionaries(
        {
            "dtype": st.sampled_from(sorted(DTYPE_BYTES)) | json_values,
            "shape": st.lists(small_ints, max_size=3) | json_values,
            "data_offsets": st.lists(small_ints, min_size=2, max_size=2) | json_values,
        }
    )
    | json_values
)
headers = st.dictionaries(
    st.sampled_from(["a", "b", "c", "__metadata__"]) | st.text(max_size=4),
    tensor_info,
    max_size=4,
)


def _file(header: Any, data_size: int) -> io.BufferedReader:
    raw = json.dumps(header).encode()
    fd = os.memfd_create("header")
    os.write(fd, struct.pack("<Q", len(raw)) + raw + bytes(data_size))
    os.lseek(fd, 0, os.SEEK_SET)
    return os.fdopen(fd, "rb")


@FUZZ
@given(headers | json_values, st.integers(0, 256))
def test_any_json_header_is_summarised_truthfully_or_refused(header: Any, data_size: int) -> None:
    with _file(header, data_size) as handle:
        try:
            summary = check_safetensors(handle, "model.safetensors")
        except UnsafeModel as exc:
            assert exc.message
            return
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    covered = sum(math.prod(v["shape"]) * DTYPE_BYTES[v["dtype"]] for v in tensors.values())
    assert covered == data_size
    assert summary.tensor_count == len(tensors)
    assert summary.parameters == sum(math.prod(v["shape"]) for v in tensors.values())


@FUZZ
@given(json_values, st.integers(1, 400))
def test_bounded_json_parses_or_refuses(value: Any, depth: int) -> None:
    nested = "[" * depth + json.dumps(value) + "]" * depth
    try:
        parsed = safe_json.loads(nested, what="config.json", max_bytes=1 << 20)
    except UnsafeModel as exc:
        assert "config.json" in exc.message
        return
    for _ in range(depth):
        (parsed,) = parsed
    assert parsed == value
