"""Erasure of batch data on PostgreSQL, racing a batch that is finishing: the finishing
batch holds its row while it writes its output from its lines, and the erasure waits for
it, then writes that output again without the subject's answers."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from modelyard.audit.erasure import Erasure, erase_subject
from modelyard.audit.log import AuditEntry, AuditLog
from modelyard.batch.files import FileStore
from modelyard.batch.input_lines import parse_lines
from modelyard.batch.store import BatchStore
from modelyard.config import Settings
from modelyard.governance.keys import Principal
from modelyard.store.batch_tables import BatchFileRow, BatchRow
from modelyard.store.database import Database

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

ALICE = Principal(key_name="alice", key_id="key-alice", admin=False)


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    opened = Database(settings.resolved_database_url)
    yield opened
    opened.close()


def _line(custom_id: str, text: str, user: str | None) -> bytes:
    body = {"model": "m", "messages": [{"role": "user", "content": text}]}
    if user:
        body["user"] = user
    line = {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}
    return json.dumps(line).encode() + b"\n"


def _waiting_on_a_lock(db: Database) -> bool:
    with db.engine.connect() as conn:
        query = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        return bool(conn.execute(sa.text(query)).scalar_one())


def test_an_erasure_waits_for_a_finishing_batch_then_rewrites_its_output(
    db: Database, settings: Settings
) -> None:
    content = _line("c1", "carolsecret", "carol") + _line("o1", "other", None)
    uploaded = FileStore(db).create(ALICE, "in.jsonl", "batch", content)
    lines, _ = parse_lines(content, max_lines=10, max_line_bytes=10_000)
    store = BatchStore(db)
    batch = store.create(
        ALICE,
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata=None,
        lines=lines,
        problems=[],
    )
    for line_no, answer in ((1, "for carol: carolanswer"), (2, "for alice")):
        assert store.record(
            batch.id,
            line_no,
            status_code=200,
            request_id=f"r{line_no}",
            response=json.dumps(answer),
        )
    log = AuditLog(db, settings)  # carol is linked to the audit log, as her requests made her
    log.append(AuditEntry(actor="alice", subject="carol", status=200, prompt="carolsecret"))

    erased: list[Erasure] = []
    with db.session() as finishing:  # what finalize does: lock the batch, write its files
        row = finishing.get(BatchRow, batch.id, with_for_update=True)
        assert row is not None
        worker = threading.Thread(
            target=lambda: erased.append(erase_subject(log, "carol", actor="tests"))
        )
        worker.start()
        deadline = time.monotonic() + 30
        while not _waiting_on_a_lock(db):  # the erasure waits for this transaction
            assert time.monotonic() < deadline, "the erasure did not wait for the batch"
            time.sleep(0.05)
        store._write_files(finishing, row, row.created_at)
        row.status = "completed"
    worker.join(30)
    log.close(checkpoint=False)

    (erasure,) = erased
    assert erasure.batch.lines == 1
    with db.session() as session:
        finished = session.get(BatchRow, batch.id)
        assert finished is not None and finished.output_file_id and finished.error_file_id
        output = session.get(BatchFileRow, finished.output_file_id)
        assert output is not None
        rows = [json.loads(x) for x in output.content.decode().splitlines()]
        content_now = session.get(BatchFileRow, uploaded.id)
        assert content_now is not None and b"carolsecret" not in content_now.content
    assert rows[0]["response"] is None and rows[0]["error"]["code"] == "subject_erased"
    assert rows[1]["response"]["body"] == "for alice"
    assert "carolanswer" not in output.content.decode()
