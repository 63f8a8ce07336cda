"""Run one federation on this host: a Flower SuperLink, one SuperNode per site, then
``flwr run`` of the federated LoRA app (``flower_app/``), and wait until it has finished.

Flower lives in its own venv (``.venv-flower``, ``constraints-flower.txt``): its pins clash
with the project's, so these processes never import modelyard and this module never imports
flwr. Every process:

* listens on loopback only, insecure (no TLS), on a port found free by binding port 0;
* starts in its own process group and session, and dies with this process (``PDEATHSIG``);
* gets a minimal environment: PATH with the Flower venv first, ``FLWR_HOME`` and ``HOME``
  inside ``work`` (nothing lands in the user's home), telemetry and update checks off;
  the SuperLink never installs the app's dependencies (``uv sync`` would need the network);
* logs to ``work/logs/<process>.log``.

``flwr run`` submits the app through the connection named in ``work/flwr-home/config.toml``
and streams the run's log until the ServerApp ends. The run succeeded when ``flwr run``
exits 0 and the ServerApp wrote the files its run config names (``out``, ``report``); stale
copies are removed first, so their presence proves this run wrote them. Anything else (a
process that dies, the time limit) ends every process and raises ``EngineFault`` with the
log tails. Whatever happens, every process group started here, and every process they
started, is killed before this returns.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from modelyard.errors import EngineFault, InvalidInput

ConfigValue = str | int | float | bool
LineCallback = Callable[[str], None]

FLOWER_EXECUTABLES = ("flower-superlink", "flower-supernode", "flwr")
SETUP_HINT = (
    "python3.11 -m venv .venv-flower && "
    ".venv-flower/bin/pip install -c constraints-flower.txt flwr==1.42.0"
)
CONNECTION = "modelyard-local"
HOST = "127.0.0.1"
OUTPUT_KEYS = ("out", "report")
PORT_WAIT_S = 60.0
POLL_S = 0.5
STOP_GRACE_S = 5.0
LOG_TAIL_LINES = 25
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class SiteSpec:
    """One site: its name (log file names, reports) and its SuperNode's node config."""

    name: str
    node_config: dict[str, ConfigValue] = field(default_factory=dict)


@dataclass
class _Started:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    pump: threading.Thread | None = None
    """The thread copying a piped stdout to the log (``flwr run`` only)."""


def run_federation(
    *,
    flower_bin: Path,
    app_dir: Path,
    work: Path,
    sites: list[SiteSpec],
    run_config: dict[str, ConfigValue],
    timeout_s: float,
    on_line: LineCallback | None = None,
) -> None:
    """Run the Flower App in ``app_dir`` over ``sites`` with ``run_config``; return when the
    ServerApp has written its outputs. ``on_line`` gets each line ``flwr run`` streams (the
    ServerApp's log), in the calling thread. Raises ``InvalidInput`` for a bad call (no
    Flower venv, bad names or values) and ``EngineFault`` when the run fails or overruns."""
    _check_call(flower_bin, app_dir, sites, run_config, timeout_s)
    deadline = time.monotonic() + timeout_s
    layout = _prepare(work, app_dir, sites, run_config)
    started: list[_Started] = []
    try:
        _run(flower_bin, layout, sites, started, deadline, on_line)
    finally:
        _kill_all(started)


def _check_call(
    flower_bin: Path,
    app_dir: Path,
    sites: list[SiteSpec],
    run_config: dict[str, ConfigValue],
    timeout_s: float,
) -> None:
    missing = [name for name in FLOWER_EXECUTABLES if not (flower_bin / name).is_file()]
    if missing:
        raise InvalidInput(
            f"Flower is not installed in {flower_bin} (no {', '.join(missing)}); "
            f"set it up from the repository root: {SETUP_HINT}"
        )
    if not (app_dir / "pyproject.toml").is_file():
        raise InvalidInput(f"{app_dir} is not a Flower App (no pyproject.toml)")
    if not sites:
        raise InvalidInput("a federation needs at least one site")
    names = [site.name for site in sites]
    for name in names:
        if not _NAME.fullmatch(name):
            raise InvalidInput(f"bad site name {name!r}: letters, digits, '.', '_', '-'")
    if len(set(names)) != len(names):
        raise InvalidInput(f"site names must be unique: {', '.join(names)}")
    for site in sites:
        _toml_table(site.node_config)
    _toml_table(run_config)
    if not (timeout_s > 0 and math.isfinite(timeout_s)):
        raise InvalidInput(f"timeout_s must be a positive number of seconds, not {timeout_s}")


def _toml_value(value: ConfigValue) -> str:
    """One flat config value as TOML (a JSON string is a valid TOML basic string)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(f"config values must be finite numbers, not {value}")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    raise InvalidInput(f"config values must be str, int, float or bool, not {type(value).__name__}")


def _toml_table(values: dict[str, ConfigValue]) -> str:
    """A flat config as a TOML document: what ``--run-config`` / ``--node-config`` read."""
    lines = []
    for key, value in values.items():
        if not _KEY.fullmatch(key):
            raise InvalidInput(f"bad config key {key!r}: letters, digits, '_', '-'")
        lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class _Layout:
    work: Path
    app: Path
    logs: Path
    run_config_file: Path
    outputs: list[Path]

    def home(self, process: str) -> Path:
        return self.work / "flwr-home" if process == "cli" else self.work / f"flwr-{process}"

    def node_config_file(self, site: str) -> Path:
        return self.work / "config" / f"site-{site}.toml"


def _prepare(
    work: Path, app_dir: Path, sites: list[SiteSpec], run_config: dict[str, ConfigValue]
) -> _Layout:
    """Lay out ``work``: a clean copy of the app, the config files, empty log folder; remove
    stale outputs."""
    work = work.resolve()
    layout = _Layout(
        work=work,
        app=work / "app",
        logs=work / "logs",
        run_config_file=work / "config" / "run-config.toml",
        outputs=[Path(str(run_config[key])) for key in OUTPUT_KEYS if run_config.get(key)],
    )
    shutil.rmtree(layout.app, ignore_errors=True)
    shutil.copytree(app_dir, layout.app, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    layout.logs.mkdir(parents=True, exist_ok=True)
    layout.run_config_file.parent.mkdir(parents=True, exist_ok=True)
    layout.run_config_file.write_text(_toml_table(run_config), encoding="utf-8")
    for site in sites:
        layout.node_config_file(site.name).write_text(
            _toml_table(site.node_config), encoding="utf-8"
        )
    for output in layout.outputs:
        output.unlink(missing_ok=True)
    return layout


def _free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports the kernel says are free (bound together, then
    released just before the processes take them)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((HOST, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def _write_connection(layout: _Layout, superlink_port: int) -> None:
    """The CLI's ``config.toml``: one insecure loopback connection, the default."""
    home = layout.home("cli")
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "{CONNECTION}"\n\n'
        f'[superlink.{CONNECTION}]\naddress = "{HOST}:{superlink_port}"\ninsecure = true\n',
        encoding="utf-8",
    )


def _env(flower_bin: Path, layout: _Layout, process: str) -> dict[str, str]:
    """A minimal environment: the Flower venv, a FLWR_HOME and HOME inside ``work``."""
    home = layout.home(process)
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.pathsep.join([str(flower_bin), "/usr/local/bin", "/usr/bin", "/bin"]),
        "VIRTUAL_ENV": str(flower_bin.parent),
        "HOME": str(home),
        "FLWR_HOME": str(home),
        "FLWR_TELEMETRY_ENABLED": "0",
        "FLWR_DISABLE_UPDATE_CHECK": "1",
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
    }
    if "TMPDIR" in os.environ:
        env["TMPDIR"] = os.environ["TMPDIR"]
    return env


def _die_with_parent() -> Callable[[], None]:
    """A pre-exec hook: the child gets SIGKILL when this process dies, so a crashed caller
    leaves no Flower process behind. Resolved before the fork."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return hook


def _spawn(
    name: str,
    args: list[str],
    env: dict[str, str],
    layout: _Layout,
    started: list[_Started],
    *,
    stdout_pipe: bool = False,
) -> _Started:
    """Start one process in its own session; stdout and stderr to its log (or a pipe)."""
    log = layout.logs / f"{name}.log"
    with log.open("wb") as fh:
        process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else fh,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=layout.work,
            start_new_session=True,
            preexec_fn=_die_with_parent(),
        )
    entry = _Started(name, process, log)
    started.append(entry)
    return entry


def _run(
    flower_bin: Path,
    layout: _Layout,
    sites: list[SiteSpec],
    started: list[_Started],
    deadline: float,
    on_line: LineCallback | None,
) -> None:
    superlink_port, *site_ports = _free_ports(1 + len(sites))
    superlink = _spawn(
        "superlink",
        [
            str(flower_bin / "flower-superlink"),
            "--insecure",
            "--disable-runtime-dependency-installation",
            "--host",
            HOST,
            "--port",
            str(superlink_port),
        ],
        _env(flower_bin, layout, "superlink"),
        layout,
        started,
    )
    _wait_port(superlink, superlink_port, started, deadline)
    nodes = [
        _start_site(flower_bin, layout, site, superlink_port, port, started)
        for site, port in zip(sites, site_ports, strict=True)
    ]
    for node, port in zip(nodes, site_ports, strict=True):
        _wait_port(node, port, started, deadline)
    _write_connection(layout, superlink_port)
    runner = _spawn(
        "flwr-run",
        [
            str(flower_bin / "flwr"),
            "run",
            str(layout.app),
            CONNECTION,
            "--stream",
            "--run-config",
            str(layout.run_config_file),
        ],
        _env(flower_bin, layout, "cli"),
        layout,
        started,
        stdout_pipe=True,
    )
    _follow(runner, superlink, nodes, started, deadline, on_line)
    _check_outputs(layout, started)


def _start_site(
    flower_bin: Path,
    layout: _Layout,
    site: SiteSpec,
    superlink_port: int,
    port: int,
    started: list[_Started],
) -> _Started:
    return _spawn(
        f"site-{site.name}",
        [
            str(flower_bin / "flower-supernode"),
            "--insecure",
            "--superlink",
            f"{HOST}:{superlink_port}",
            "--host",
            HOST,
            "--port",
            str(port),
            "--node-config",
            str(layout.node_config_file(site.name)),
        ],
        _env(flower_bin, layout, f"site-{site.name}"),
        layout,
        started,
    )


def _wait_port(entry: _Started, port: int, started: list[_Started], deadline: float) -> None:
    """Until ``entry`` listens on ``port``; a fault when it exits or time runs out."""
    limit = min(deadline, time.monotonic() + PORT_WAIT_S)
    while time.monotonic() < limit:
        if entry.process.poll() is not None:
            raise _fault(f"{entry.name} exited with status {entry.process.returncode}", started)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            if sock.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.1)
    raise _fault(f"{entry.name} did not listen on {HOST}:{port} in time", started)


def _pump(stream: IO[bytes], log: Path, lines: queue.Queue[str | None]) -> None:
    """Copy ``flwr run``'s output to its log and hand each line, without the colour codes
    Flower's logger always adds, to the waiting thread."""
    with log.open("ab") as fh:
        for raw in stream:
            fh.write(raw)
            fh.flush()
            lines.put(_ANSI.sub("", raw.decode("utf-8", "replace").rstrip("\n")))
    lines.put(None)


def _follow(
    runner: _Started,
    superlink: _Started,
    nodes: list[_Started],
    started: list[_Started],
    deadline: float,
    on_line: LineCallback | None,
) -> None:
    """Stream ``flwr run`` until it exits; a fault when the SuperLink or every SuperNode
    dies first, when ``flwr run`` fails, or at the deadline."""
    assert runner.process.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    runner.pump = threading.Thread(
        target=_pump, args=(runner.process.stdout, runner.log, lines), daemon=True
    )
    runner.pump.start()
    ended = False
    while not ended:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _fault("the federated run did not finish within its time limit", started)
        try:
            line = lines.get(timeout=min(POLL_S, remaining))
        except queue.Empty:
            _check_alive(superlink, nodes, started)
            continue
        if line is None:
            ended = True
        elif on_line is not None:
            on_line(line)
    runner.pump.join()
    status = runner.process.wait(timeout=max(1.0, deadline - time.monotonic()))
    if status != 0:
        raise _fault(f"flwr run exited with status {status}", started)


def _check_alive(superlink: _Started, nodes: list[_Started], started: list[_Started]) -> None:
    if superlink.process.poll() is not None:
        raise _fault(f"the SuperLink exited with status {superlink.process.returncode}", started)
    if all(node.process.poll() is not None for node in nodes):
        raise _fault("every site's SuperNode exited", started)


def _check_outputs(layout: _Layout, started: list[_Started]) -> None:
    missing = [str(path) for path in layout.outputs if not path.is_file()]
    if missing:
        raise _fault(f"the ServerApp failed: it did not write {', '.join(missing)}", started)


def _tail(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    lines = [_ANSI.sub("", line) for line in text.splitlines() if line.strip()]
    return "\n".join(lines[-LOG_TAIL_LINES:])


def _fault(message: str, started: list[_Started]) -> EngineFault:
    """``message`` with the log tails of the run (``flwr run`` first: the ServerApp's log)."""
    ordered = sorted(started, key=lambda entry: entry.name != "flwr-run")
    tails = [f"--- {entry.log} ---\n{_tail(entry.log)}" for entry in ordered]
    return EngineFault("\n".join([message, *tails]))


def _proc_table() -> dict[int, tuple[int, int]]:
    """Every live process: pid -> (parent pid, session id), from /proc."""
    table: dict[int, tuple[int, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read().decode("ascii", "replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        table[int(entry.name)] = (int(fields[1]), int(fields[3]))
    return table


def _family(roots: set[int]) -> set[int]:
    """The roots' live descendants, and every process in a session a root leads (Flower
    starts some children in new sessions, and an orphan leaves the parent tree)."""
    table = _proc_table()
    found = {pid for pid, (_, sid) in table.items() if sid in roots}
    frontier = set(roots) | found
    while frontier:
        children = {pid for pid, (ppid, _) in table.items() if ppid in frontier}
        frontier = children - found
        found |= children
    return found - roots


def _signal_all(pids: set[int], sig: signal.Signals) -> None:
    for pid in pids:
        for send in (os.killpg, os.kill):
            with suppress(ProcessLookupError, PermissionError):
                send(pid, sig)


@contextmanager
def _reaping(started: list[_Started]) -> Iterator[None]:
    try:
        yield
    finally:
        for entry in started:
            if entry.process.poll() is None:
                entry.process.kill()
            entry.process.wait()
            if entry.pump is not None:  # EOF once every writer is dead
                entry.pump.join(timeout=STOP_GRACE_S)
            if entry.process.stdout is not None and not (entry.pump and entry.pump.is_alive()):
                entry.process.stdout.close()


def _kill_all(started: list[_Started]) -> None:
    """SIGTERM every process group started here and everything they started, SIGKILL what
    is left after a grace period, and reap the direct children. The family is taken before
    the first signal too: a child whose parent dies leaves the parent tree."""
    roots = {entry.process.pid for entry in started}
    if not roots:
        return
    with _reaping(started):
        known = _family(roots)
        _signal_all(roots | known, signal.SIGTERM)
        end = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < end:
            if all(entry.process.poll() is not None for entry in started) and not _family(roots):
                break
            time.sleep(0.1)
        _signal_all(roots | known | _family(roots | known), signal.SIGKILL)
