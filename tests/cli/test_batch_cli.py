"""``modelyard batch submit|status|results|list|cancel`` in process, against a gateway played
by ``httpx.MockTransport``: what is sent (multipart upload, then the batch's JSON, the key as
a bearer token), what is printed (tables, ``--json``), ``--wait``'s exit codes, results
written whole, and the gateway's errors, a missing key and a refused connection turned into
clear messages and the usual exit codes. The key is never printed."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from modelyard.batch.client import BatchClient
from modelyard.config import Settings
from tests.governance.clirun import Result, run_cli

KEY = "my-7-s3cr3tbatchkey000"
OTHER_KEY = "my-8-an0therkey0000000"
CREATED_AT = 1_700_000_000
"""A fixed Unix time: 2023-11-14T22:13:20 UTC."""

LINES = [
    {
        "custom_id": f"req-{n}",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "chat", "messages": [{"role": "user", "content": f"hello {n}"}]},
    }
    for n in range(3)
]


def batch(status: str = "validating", **fields: Any) -> dict[str, Any]:
    """A Batch object as the gateway answers it."""
    counts = fields.pop("counts", (0, 0, 3))
    value: dict[str, Any] = {
        "id": "batch_abc123",
        "object": "batch",
        "endpoint": "/v1/chat/completions",
        "errors": None,
        "input_file_id": "file-in1",
        "completion_window": "24h",
        "status": status,
        "output_file_id": None,
        "error_file_id": None,
        "created_at": CREATED_AT,
        "in_progress_at": None,
        "expires_at": CREATED_AT + 86_400,
        "finalizing_at": None,
        "completed_at": None,
        "failed_at": None,
        "expired_at": None,
        "cancelling_at": None,
        "cancelled_at": None,
        "request_counts": dict(zip(("completed", "failed", "total"), counts, strict=True)),
        "metadata": None,
    }
    value.update(fields)
    return value


def error_json(message: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


class Gateway:
    """The Batch API's routes as a mock transport: records requests, answers from scripts."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.polls: list[dict[str, Any]] = [batch("in_progress")]
        """What successive ``GET /v1/batches/{id}`` answer; the last one repeats."""
        self.files: dict[str, bytes] = {}
        self.listed: list[dict[str, Any]] = []
        self.fail: tuple[int, Any] | None = None
        """When set, every request is answered with this status and body."""

    def handle(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        if self.fail is not None:
            status, body = self.fail
            if isinstance(body, bytes):
                return httpx.Response(status, content=body)
            return httpx.Response(status, json=body, headers={"Retry-After": "7"})
        return self._route(request)

    def _route(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        if (method, path) == ("POST", "/v1/files"):
            return httpx.Response(200, json={"id": "file-in1", "object": "file", "bytes": 10})
        if (method, path) == ("POST", "/v1/batches"):
            return httpx.Response(200, json=batch("validating"))
        if (method, path) == ("GET", "/v1/batches"):
            return httpx.Response(
                200, json={"object": "list", "data": self.listed, "has_more": False}
            )
        if method == "GET" and path == "/v1/batches/batch_abc123":
            answer = self.polls[0] if len(self.polls) == 1 else self.polls.pop(0)
            return httpx.Response(200, json=answer)
        if method == "POST" and path == "/v1/batches/batch_abc123/cancel":
            return httpx.Response(200, json=batch("cancelling"))
        if method == "GET" and path.startswith("/v1/files/") and path.endswith("/content"):
            file_id = path.split("/")[3]
            if file_id in self.files:
                return httpx.Response(200, content=self.files[file_id])
        return httpx.Response(404, json=error_json(f"no such route or object: {path}"))

    def paths(self) -> list[tuple[str, str]]:
        return [(r.method, r.url.path) for r in self.requests]


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> Gateway:
    """The fake gateway, wired into the command's client; the key set, the URL default."""
    fake = Gateway()
    transport = httpx.MockTransport(fake.handle)
    monkeypatch.setattr(
        "modelyard.cli.batch.BatchClient", partial(BatchClient, transport=transport)
    )
    monkeypatch.setenv("MODELYARD_API_KEY", KEY)
    monkeypatch.delenv("MODELYARD_URL", raising=False)
    return fake


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """``--wait``'s pauses, recorded instead of slept."""
    slept: list[float] = []
    monkeypatch.setattr("modelyard.cli.batch.time.sleep", slept.append)
    return slept


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., Result]:
    def run(*args: str, ok: bool = True) -> Result:
        result = run_cli(tmp_path / "home", "batch", *args, ok=ok)
        assert KEY not in result.stdout + result.stderr
        assert OTHER_KEY not in result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        return result

    return run


@pytest.fixture
def input_file(tmp_path: Path) -> Path:
    path = tmp_path / "requests.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in LINES))
    return path


# -- submit ---------------------------------------------------------------------------------------


def test_submit_uploads_the_file_then_creates_the_batch(
    gateway: Gateway, cli: Callable[..., Result], input_file: Path
) -> None:
    result = cli("submit", str(input_file), "--metadata", "project=alpha", "--metadata", "run=a=b")
    assert gateway.paths() == [("POST", "/v1/files"), ("POST", "/v1/batches")]
    upload, create = gateway.requests
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in gateway.requests)
    assert upload.headers["content-type"].startswith("multipart/form-data; boundary=")
    body = upload.content
    assert b'name="purpose"\r\n\r\nbatch\r\n' in body
    assert b'name="file"; filename="requests.jsonl"' in body
    assert input_file.read_bytes() in body
    assert json.loads(create.content) == {
        "input_file_id": "file-in1",
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
        "metadata": {"project": "alpha", "run": "a=b"},
    }
    assert "batch_abc123" in result.stdout and "validating" in result.stdout
    assert "uploaded requests.jsonl as file-in1" in result.stderr


def test_submit_json_and_another_endpoint(
    gateway: Gateway, cli: Callable[..., Result], input_file: Path
) -> None:
    result = cli("submit", str(input_file), "--endpoint", "/v1/embeddings", "--json")
    assert json.loads(result.stdout)["id"] == "batch_abc123"
    created = json.loads(gateway.requests[1].content)
    assert created["endpoint"] == "/v1/embeddings" and "metadata" not in created


def test_submit_refuses_bad_metadata_before_sending(
    gateway: Gateway, cli: Callable[..., Result], input_file: Path
) -> None:
    result = cli("submit", str(input_file), "--metadata", "novalue", ok=False)
    assert result.returncode == 1 and "--metadata takes KEY=VALUE" in result.stderr
    assert gateway.requests == []


def test_wait_follows_the_batch_and_exits_0_when_every_line_completed(
    gateway: Gateway, cli: Callable[..., Result], input_file: Path, sleeps: list[float]
) -> None:
    gateway.polls = [
        batch("in_progress", counts=(1, 0, 3)),
        batch("finalizing", counts=(3, 0, 3)),
        batch("completed", counts=(3, 0, 3), output_file_id="file-out1"),
    ]
    result = cli("submit", str(input_file), "--wait", "--poll", "0.5", "--json")
    final = json.loads(result.stdout)
    assert final["status"] == "completed" and final["output_file_id"] == "file-out1"
    assert gateway.paths()[2:] == [("GET", "/v1/batches/batch_abc123")] * 3
    assert sleeps == [0.5, 0.5, 0.5]


@pytest.mark.parametrize(
    ("final", "why"),
    [
        (
            batch("completed", counts=(2, 1, 3), output_file_id="o", error_file_id="e"),
            "1 of 3 lines failed; the failed lines: modelyard batch results batch_abc123 --errors",
        ),
        (batch("expired", counts=(1, 2, 3)), "it was expired after 3 of 3 lines (2 failed)"),
        (batch("cancelled", counts=(0, 0, 3)), "it was cancelled after 0 of 3 lines"),
        (
            batch(
                "failed",
                errors={
                    "object": "list",
                    "data": [{"code": "invalid_url", "message": "bad url", "line": 2}],
                },
            ),
            "it failed: line 2: bad url (invalid_url)",
        ),
    ],
)
def test_wait_exits_1_and_says_why_unless_every_line_completed(
    gateway: Gateway,
    cli: Callable[..., Result],
    input_file: Path,
    sleeps: list[float],
    final: dict[str, Any],
    why: str,
) -> None:
    gateway.polls = [final]
    result = cli("submit", str(input_file), "--wait", ok=False)
    assert result.returncode == 1
    assert f"error: batch batch_abc123: {why}" in result.stderr
    assert final["status"] in result.stdout
    assert sleeps == [2.0]


# -- status, list, cancel -------------------------------------------------------------------------


def test_status_shows_fields_with_utc_times(gateway: Gateway, cli: Callable[..., Result]) -> None:
    gateway.polls = [
        batch(
            "completed",
            counts=(2, 1, 3),
            completed_at=CREATED_AT + 60,
            output_file_id="file-out1",
            error_file_id="file-err1",
            metadata={"project": "alpha"},
        )
    ]
    table = cli("status", "batch_abc123").stdout
    for text in (
        "batch_abc123",
        "completed",
        "/v1/chat/completions",
        "2 ok, 1 failed, 3 total",
        "2023-11-14T22:13:20+00:00",
        "2023-11-14T22:14:20+00:00",
        "file-out1",
        "file-err1",
        "project=alpha",
    ):
        assert text in table, text
    assert json.loads(cli("status", "batch_abc123", "--json").stdout) == gateway.polls[0]


def test_status_shows_the_first_errors_only(gateway: Gateway, cli: Callable[..., Result]) -> None:
    errors = [{"code": "bad", "message": f"problem {n}", "line": n} for n in range(1, 9)]
    gateway.polls = [batch("failed", errors={"object": "list", "data": errors})]
    table = cli("status", "batch_abc123").stdout
    assert "line 5: problem 5" in table and "problem 6" not in table
    assert "and 3 more" in table


def test_list_table_and_json(gateway: Gateway, cli: Callable[..., Result]) -> None:
    gateway.listed = [
        batch("in_progress", counts=(1, 0, 3)),
        batch("completed", id="batch_old", counts=(5, 0, 5)),
    ]
    table = cli("list", "--limit", "5").stdout
    assert gateway.requests[0].url.params["limit"] == "5"
    assert "batch_abc123" in table and "in_progress" in table and "1 ok, 0 failed, 3 total" in table
    assert "batch_old" in table and "2023-11-14T22:13:20+00:00" in table
    listed = json.loads(cli("list", "--json").stdout)
    assert [b["id"] for b in listed] == ["batch_abc123", "batch_old"]


def test_cancel(gateway: Gateway, cli: Callable[..., Result]) -> None:
    assert "batch_abc123 cancelling" in cli("cancel", "batch_abc123").stdout
    assert json.loads(cli("cancel", "batch_abc123", "--json").stdout)["status"] == "cancelling"
    assert gateway.paths() == [("POST", "/v1/batches/batch_abc123/cancel")] * 2


def test_an_id_that_is_no_path_segment_is_refused(
    gateway: Gateway, cli: Callable[..., Result]
) -> None:
    result = cli("status", "../files/file-x", ok=False)
    assert result.returncode == 1 and "invalid id" in result.stderr
    assert gateway.requests == []


# -- results --------------------------------------------------------------------------------------


OUTPUT = b'{"custom_id":"req-0","response":{"status_code":200}}\n{"custom_id":"req-1"}\n'
ERRORS = b'{"custom_id":"req-2","response":{"status_code":400}}\n'


@pytest.fixture
def finished(gateway: Gateway) -> Gateway:
    gateway.polls = [
        batch("completed", counts=(2, 1, 3), output_file_id="file-out1", error_file_id="file-err1")
    ]
    gateway.files = {"file-out1": OUTPUT, "file-err1": ERRORS}
    return gateway


def test_results_writes_the_output_file(
    finished: Gateway, cli: Callable[..., Result], tmp_path: Path
) -> None:
    target = tmp_path / "out" / "results.jsonl"
    result = cli("results", "batch_abc123", "--output", str(target))
    assert target.read_bytes() == OUTPUT
    assert "wrote 2 lines" in result.stderr and str(target) in result.stderr
    assert [p for p in target.parent.iterdir()] == [target]  # no temporary file left
    assert finished.paths()[-1] == ("GET", "/v1/files/file-out1/content")
    summary = json.loads(cli("results", "batch_abc123", "-o", str(target), "--json").stdout)
    assert summary == {
        "batch_id": "batch_abc123",
        "file_id": "file-out1",
        "path": str(target),
        "bytes": len(OUTPUT),
        "lines": 2,
    }


def test_results_to_stdout_and_the_error_file(
    finished: Gateway, cli: Callable[..., Result]
) -> None:
    assert cli("results", "batch_abc123").stdout == OUTPUT.decode()
    assert cli("results", "batch_abc123", "--errors").stdout == ERRORS.decode()
    lines = json.loads(cli("results", "batch_abc123", "--json").stdout)
    assert [line["custom_id"] for line in lines] == ["req-0", "req-1"]


def test_results_refuses_a_batch_not_finished_yet(
    gateway: Gateway, cli: Callable[..., Result], tmp_path: Path
) -> None:
    target = tmp_path / "results.jsonl"
    result = cli("results", "batch_abc123", "--output", str(target), ok=False)
    assert result.returncode == 1
    assert "batch batch_abc123 is in_progress: no results yet" in result.stderr
    assert not target.exists()
    gateway.polls = [batch("completed", counts=(3, 0, 3), output_file_id="file-out1")]
    result = cli("results", "batch_abc123", "--errors", ok=False)
    assert result.returncode == 1 and "no failed line: no error file" in result.stderr


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "code", "message"),
    [
        (400, error_json("the file is not JSONL: line 2"), 1, "the file is not JSONL: line 2"),
        (401, error_json("invalid API key", "authentication_error"), 1, "invalid API key"),
        (403, error_json("this key may not use /v1/batches", "permission_error"), 1, "may not"),
        (404, error_json("no batch batch_abc123"), 1, "no batch batch_abc123"),
        (409, error_json("batch batch_abc123 is already completed"), 1, "already completed"),
        (429, error_json("token budget spent", "rate_limit_error"), 1, "token budget spent"),
        (503, error_json("the audit log is down", "server_error"), 3, "the audit log is down"),
        (502, b"<html>Bad Gateway</html>", 3, "the gateway answered HTTP 502: <html>Bad Gateway"),
    ],
)
def test_gateway_errors_keep_their_message_and_map_to_exit_codes(
    gateway: Gateway,
    cli: Callable[..., Result],
    status: int,
    body: Any,
    code: int,
    message: str,
) -> None:
    gateway.fail = (status, body)
    result = cli("status", "batch_abc123", ok=False)
    assert result.returncode == code
    assert "error: " in result.stderr and message in result.stderr


def test_no_key_names_the_variable_and_sends_nothing(
    gateway: Gateway, cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODELYARD_API_KEY")
    result = cli("list", ok=False)
    assert result.returncode == 1 and "no API key: set MODELYARD_API_KEY" in result.stderr
    assert gateway.requests == []


def test_key_env_names_another_variable(
    gateway: Gateway, cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEAM_BATCH_KEY", OTHER_KEY)
    cli("list", "--key-env", "TEAM_BATCH_KEY")
    assert gateway.requests[0].headers["authorization"] == f"Bearer {OTHER_KEY}"
    result = cli("list", "--key-env", "UNSET_BATCH_KEY", ok=False)
    assert result.returncode == 1 and "UNSET_BATCH_KEY is not set or empty" in result.stderr


def test_url_option_and_setting(
    gateway: Gateway, cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    cli("list", "--url", "https://yard.example:9443/")
    monkeypatch.setenv("MODELYARD_URL", "http://gw.internal:8080/v1")
    cli("list")
    assert [str(r.url) for r in gateway.requests] == [
        "https://yard.example:9443/v1/batches?limit=20",
        "http://gw.internal:8080/v1/batches?limit=20",
    ]
    result = cli("list", "--url", "yard.example:8080", ok=False)
    assert result.returncode == 1 and "must start with http:// or https://" in result.stderr


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_a_refused_connection_names_the_url_and_the_setting(
    cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELYARD_API_KEY", KEY)
    url = f"http://127.0.0.1:{_closed_port()}"
    result = cli("status", "batch_abc123", "--url", url, ok=False)
    assert result.returncode == 1
    assert f"cannot reach the gateway at {url}/v1" in result.stderr
    assert "MODELYARD_URL" in result.stderr


def test_the_client_never_shows_the_key() -> None:
    settings = Settings(api_key=SecretStr(KEY), url="http://127.0.0.1:1")
    with BatchClient(settings) as client:
        assert KEY not in repr(client) and KEY not in repr(client._http.headers)
