"""Write the tuning demo's data: IT help-desk tickets routed to a queue, in a fixed style.

The task is narrow and its answer format is rigid (``Queue: NETWORK | Priority: HIGH``), so
a base model that has never seen it answers in free prose and scores ~0, while a LoRA run of
a few minutes on a laptop CPU learns both the format and the routing rule. Deterministic:
``python examples/tune-demo/make_data.py`` rewrites train.jsonl and eval.jsonl identically.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

QUEUES = {
    "NETWORK": [
        "the VPN keeps dropping",
        "wifi in the {place} is down",
        "I cannot reach the intranet",
        "the network share is unreachable",
        "ethernet port at my desk is dead",
        "DNS lookups time out",
    ],
    "ACCOUNT": [
        "I forgot my password",
        "my account is locked",
        "I cannot log in to {app}",
        "please reset my two-factor token",
        "my login expired",
        "I need access to {app}",
    ],
    "BILLING": [
        "I was charged twice on the last invoice",
        "please refund the duplicate payment",
        "the invoice for {app} is wrong",
        "our subscription renewal failed",
        "the credit card on file expired",
        "I need a copy of last month's receipt",
    ],
    "HARDWARE": [
        "the printer in the {place} jams",
        "my laptop will not turn on",
        "the monitor flickers",
        "my keyboard is broken",
        "the docking station does not charge",
        "the projector in the {place} has no signal",
    ],
    "SOFTWARE": [
        "{app} crashes on start",
        "{app} shows an error when saving",
        "the update for {app} failed",
        "{app} freezes when I open a file",
        "I need {app} installed",
        "{app} is very slow since yesterday",
    ],
}
URGENT = ["asap", "urgent", "right now, a client is waiting", "it is blocking the whole team"]
CALM = ["when you have time", "no rush", "sometime this week", ""]
PLACES = ["meeting room", "lobby", "third floor", "warehouse", "kitchen", "open office"]
APPS = ["Outlook", "Excel", "the CRM", "Teams", "the HR portal", "Zoom", "SAP", "Slack"]
OPENERS = ["Hi, ", "Hello, ", "", "Good morning, ", "Hey team, "]


def ticket(rng: random.Random, queue: str) -> dict[str, object]:
    problem = rng.choice(QUEUES[queue]).format(place=rng.choice(PLACES), app=rng.choice(APPS))
    high = rng.random() < 0.4
    tail = rng.choice(URGENT if high else CALM)
    text = f"{rng.choice(OPENERS)}{problem}{', ' + tail if tail else ''}."
    answer = f"Queue: {queue} | Priority: {'HIGH' if high else 'NORMAL'}"
    return {
        "messages": [
            {"role": "user", "content": text[0].upper() + text[1:]},
            {"role": "assistant", "content": answer},
        ]
    }


def main() -> None:
    rng = random.Random(7)
    here = Path(__file__).parent
    rows = [ticket(rng, queue) for _ in range(60) for queue in QUEUES]
    rng.shuffle(rows)
    seen: set[str] = set()
    unique = []
    for row in rows:
        key = json.dumps(row, sort_keys=True)
        if key not in seen:
            seen.add(key)
            unique.append(row)
    held_out, train = unique[:40], unique[40:]
    for name, part in (("train.jsonl", train), ("eval.jsonl", held_out)):
        with (here / name).open("w") as out:
            for row in part:
                out.write(json.dumps(row) + "\n")
        print(f"{name}: {len(part)} rows")
    # The held-out rows again in `modelyard eval run`'s format (prompt messages + expected).
    with (here / "eval-suite.jsonl").open("w") as out:
        for row in held_out:
            messages = row["messages"]
            assert isinstance(messages, list)
            out.write(json.dumps({"messages": messages[:-1], "expected": messages[-1]["content"]}))
            out.write("\n")
    print(f"eval-suite.jsonl: {len(held_out)} rows")


if __name__ == "__main__":
    main()
