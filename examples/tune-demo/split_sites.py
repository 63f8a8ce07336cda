"""Split the tuning demo's training tickets into three sites with different ticket mixes.

For federated tuning (docs/tuning.md, "Federated tuning"): each site sees mostly its own
queues, as offices of one company would (``north``: network and account tickets, ``south``:
billing and hardware, ``east``: software), plus a few of the others. Each of a queue's
tickets goes to its home site with probability 0.8, else to one of the other two.
Deterministic: ``python examples/tune-demo/split_sites.py`` rewrites sites/*.jsonl identically.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

HOME = {
    "NETWORK": "north",
    "ACCOUNT": "north",
    "BILLING": "south",
    "HARDWARE": "south",
    "SOFTWARE": "east",
}
SITES = ("north", "south", "east")


def main() -> None:
    here = Path(__file__).parent
    rng = random.Random(11)
    parts: dict[str, list[str]] = {site: [] for site in SITES}
    for line in (here / "train.jsonl").read_text().splitlines():
        answer = json.loads(line)["messages"][-1]["content"]
        queue = answer.split("|")[0].removeprefix("Queue:").strip()
        home = HOME[queue]
        site = home if rng.random() < 0.8 else rng.choice([s for s in SITES if s != home])
        parts[site].append(line)
    (here / "sites").mkdir(exist_ok=True)
    for site, lines in parts.items():
        (here / "sites" / f"{site}.jsonl").write_text("\n".join(lines) + "\n")
        mix = Counter(
            json.loads(x)["messages"][-1]["content"].split("|")[0].split(":")[1].strip()
            for x in lines
        )
        print(f"sites/{site}.jsonl: {len(lines)} rows, {dict(sorted(mix.items()))}")


if __name__ == "__main__":
    main()
