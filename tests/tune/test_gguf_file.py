"""The GGUF reader's own file handling: what it leaves open, whatever happens."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.tune.gguf_file import GGUFFile
from tests.factories import write_tiny_gguf


def test_close_closes_the_file_while_an_array_still_views_the_map(tmp_path: Path) -> None:
    gguf = GGUFFile(write_tiny_gguf(tmp_path / "tiny.gguf"))
    held = gguf.raw(gguf.tensor("token_embd.weight"))  # a view into the map, still alive
    gguf.close()  # the map cannot be unmapped yet: that must not leave the file open
    assert gguf._file.closed
    assert held.nbytes == 16 * 8 * 4


def test_an_error_inside_the_block_is_not_masked_by_the_close(tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "tiny.gguf")

    def use() -> None:
        with GGUFFile(path) as gguf:
            array = gguf.raw(gguf.tensor("token_embd.weight"))
            raise OSError(28, f"No space left on device ({array.nbytes} bytes to write)")

    with pytest.raises(OSError, match="No space left"):
        use()
