"""An attacker process for the intake race tests, driven by the kernel's inotify events.

Run as ``python swapper.py DIRECTORY NAME TRIGGER ACTION REPLACEMENT``. It watches
DIRECTORY with inotify, prints ``ready``, and counts the opens, reads and closes of the file
NAME there. On the first TRIGGER event (``open``, ``access`` or ``close``) it does ACTION once:

* ``rename``: atomically renames REPLACEMENT over NAME (the path now names other bytes);
* ``rewrite``: rewrites NAME in place (same inode) with REPLACEMENT's bytes.

It stops when its stdin closes, printing one JSON line with the counts and whether it struck.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import struct
import sys
from pathlib import Path

IN_ACCESS = 0x001
IN_CLOSE_NOWRITE = 0x010
IN_OPEN = 0x020
TRIGGERS = {"open": IN_OPEN, "access": IN_ACCESS, "close": IN_CLOSE_NOWRITE}
EVENT = struct.Struct("iIII")


def strike(directory: Path, name: str, action: str, replacement: Path) -> None:
    target = directory / name
    if action == "rename":
        os.rename(replacement, target)
    else:
        with target.open("r+b") as handle:
            handle.write(replacement.read_bytes())
            handle.truncate()


def events(fd: int, name: str) -> list[int]:
    """The masks of the events on ``name`` in one read of the inotify descriptor."""
    buffer = os.read(fd, 65536)
    masks = []
    offset = 0
    while offset < len(buffer):
        _, mask, _, length = EVENT.unpack_from(buffer, offset)
        raw = buffer[offset + EVENT.size : offset + EVENT.size + length]
        offset += EVENT.size + length
        if raw.rstrip(b"\0").decode() == name:
            masks.append(mask)
    return masks


def main(argv: list[str]) -> int:
    directory, name, trigger, action, replacement = (
        Path(argv[0]),
        argv[1],
        TRIGGERS[argv[2]],
        argv[3],
        Path(argv[4]),
    )
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_CLOEXEC)
    if (
        fd < 0
        or libc.inotify_add_watch(fd, bytes(directory), IN_OPEN | IN_ACCESS | IN_CLOSE_NOWRITE) < 0
    ):
        raise OSError(ctypes.get_errno(), "inotify")
    counts = {"open": 0, "access": 0, "close": 0}
    struck = False
    print("ready", flush=True)
    done = False
    while not done:
        readable, _, _ = select.select([fd, sys.stdin], [], [])
        # Events are queued when the syscall happens, so the ones caused before stdin closed
        # are all readable now: handle them before stopping.
        done = sys.stdin in readable and not sys.stdin.readline()
        while select.select([fd], [], [], 0)[0]:
            for mask in events(fd, name):
                for label, bit in TRIGGERS.items():
                    if mask & bit:
                        counts[label] += 1
                if mask & trigger and not struck:
                    strike(directory, name, action, replacement)
                    struck = True
    print(json.dumps({**counts, "struck": struck}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
