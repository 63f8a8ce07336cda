"""The background checkpointer: its time and count rules (a fake clock), and its place in
the gateway's lifespan."""

from __future__ import annotations

import asyncio

from modelyard.audit import AuditLog
from modelyard.audit.checkpoints import Checkpointer, read_checkpoints
from modelyard.config import Settings
from modelyard.gateway.state import Gateway
from modelyard.store.database import Database
from tests.audit.entries import request_entry


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_checkpointer_signs_by_time_and_by_count(audit_db: Database, settings: Settings) -> None:
    settings.audit_checkpoint_every = 1000
    log = AuditLog(audit_db, settings)
    clock = FakeClock()
    checkpointer = Checkpointer(log, interval_s=30, every=3, clock=clock)
    assert not checkpointer.tick()  # empty log
    clock.now += 100
    assert not checkpointer.tick()  # still nothing to sign: idle time does not count
    log.append(request_entry(1))
    clock.now += 29
    assert not checkpointer.tick()
    clock.now += 1
    assert checkpointer.tick()  # 30 s after the record arrived
    assert not checkpointer.tick()  # nothing new
    for n in range(2, 5):
        log.append(request_entry(n))
    assert checkpointer.tick()  # three records: by count, no time passed
    assert [c.seq for c in read_checkpoints(settings)] == [1, 4]
    log.close(checkpoint=False)


def test_gateway_runs_the_checkpointer_while_serving(sqlite_settings: Settings) -> None:
    sqlite_settings.audit_checkpoint_every = 2
    gateway = Gateway.open(sqlite_settings)
    assert gateway.governance is not None
    audit = gateway.governance.audit

    async def lifespan() -> None:
        await gateway.start()
        try:
            assert gateway.checkpointer is not None and gateway.checkpointer.running
            assert not audit.sign_on_append  # requests never wait for the witness
            for n in range(3):
                audit.append(request_entry(n))
        finally:
            await gateway.close()

    asyncio.run(lifespan())
    assert gateway.checkpointer is not None and not gateway.checkpointer.running
    assert audit.sign_on_append
    assert read_checkpoints(sqlite_settings)[-1].seq == 3  # signed on shutdown at the latest
