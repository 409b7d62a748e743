"""Start the MLflow UI / tracking server for the project's store (``geograph ui``).

The server is ``mlflow server`` run as a subprocess in its own process group, so
:meth:`UIServer.stop` ends it and every worker it started by that one id. It binds to
127.0.0.1 unless told otherwise; any other address needs ``allow_remote=True``
(``--allow-remote``) and prints a loud warning, because the MLflow UI has no login and
anyone who reaches the port can read and delete runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from geograph.errors import ConfigError, TrackingError
from geograph.tracking.store import resolve_tracking_uri

LOOPBACK = "127.0.0.1"
# The server's background job runner (GenAI evaluation jobs) starts ~7 extra processes;
# geograph does not use it.
SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
READY_TIMEOUT_S = 60.0


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def server_command(
    tracking_uri: str,
    host: str = LOOPBACK,
    port: int = 5000,
    *,
    artifacts_destination: str | Path | None = None,
    workers: int = 1,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The ``mlflow server`` command line for a SQLite (or other database) store.

    Artifacts: with ``artifacts_destination`` the server proxies them (clients upload over
    HTTP into that folder); otherwise a SQLite store keeps them beside the database, as
    :func:`geograph.tracking.ensure_experiment` does.
    """
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri]
    cmd += ["--host", host, "--port", str(port), "--workers", str(workers)]
    if artifacts_destination is not None:
        cmd += ["--artifacts-destination", str(Path(artifacts_destination).absolute())]
    elif tracking_uri.startswith("sqlite:///"):
        root = Path(tracking_uri.removeprefix("sqlite:///")).parent / "artifacts"
        cmd += ["--default-artifact-root", root.absolute().as_uri()]
    return cmd + list(extra_args)


@dataclass
class UIServer:
    """A running ``mlflow server`` subprocess.

    Attributes:
        process: The subprocess (leader of its own process group).
        url: Where to point a browser or ``MLFLOW_TRACKING_URI``.
        host: Bound address.
        port: Bound port.
        log_path: File holding the server's output (None: it goes to this terminal).
    """

    process: subprocess.Popen
    url: str
    host: str
    port: int
    log_path: Path | None = None

    @property
    def pid(self) -> int:
        return int(self.process.pid)

    def log_tail(self, n: int = 20) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> float:
        """Poll ``/health`` until it answers 200; returns the seconds waited.

        Raises:
            TrackingError: the server exited or did not answer within ``timeout`` seconds.
        """
        probe = f"http://{LOOPBACK if self.host in ('0.0.0.0', '::') else self.host}:{self.port}/health"
        t0 = time.monotonic()
        while True:
            if self.process.poll() is not None:
                raise TrackingError(
                    f"mlflow server exited with code {self.process.returncode} before answering on "
                    f"{self.url}:\n{self.log_tail()}"
                )
            with contextlib.suppress(urllib.error.URLError, OSError):
                with urllib.request.urlopen(probe, timeout=2) as resp:
                    if resp.status == 200:
                        return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                self.stop()
                raise TrackingError(
                    f"mlflow server did not answer on {probe} within {timeout:.0f} s (stopped it):\n{self.log_tail()}"
                )
            time.sleep(0.25)

    def stop(self, timeout: float = 10.0) -> None:
        """End the server and its workers (SIGTERM to the process group, SIGKILL after ``timeout``)."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.process.wait(timeout=timeout)
        # workers may outlive the leader for a moment; the group id is the leader's pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def __enter__(self) -> UIServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _warn_remote(host: str, port: int, stream: TextIO) -> None:
    bar = "!" * 78
    stream.write(
        f"{bar}\n"
        f"WARNING: the MLflow UI will listen on {host}:{port}, not only on {LOOPBACK}.\n"
        "It has NO login: anyone who can reach this port can read, change and delete\n"
        "every run, artifact and registered model in this store. Use it only on a\n"
        "trusted network, or put an authenticating proxy in front of it.\n"
        f"{bar}\n"
    )
    stream.flush()


def start_ui(
    host: str = LOOPBACK,
    port: int = 5000,
    tracking_uri: str | None = None,
    *,
    allow_remote: bool = False,
    artifacts_destination: str | Path | None = None,
    workers: int = 1,
    wait: bool = True,
    timeout: float = READY_TIMEOUT_S,
    log_path: str | Path | None = None,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    stream: TextIO | None = None,
) -> UIServer:
    """Start ``mlflow server`` on the project's store and print its URL.

    Args:
        host: Address to bind; anything but ``127.0.0.1`` needs ``allow_remote``.
        port: TCP port.
        tracking_uri: The store to serve (default: :func:`geograph.tracking.resolve_tracking_uri`);
            must be a database URI, not ``http(s)://``.
        allow_remote: Allow a non-loopback ``host`` (prints a warning).
        artifacts_destination: Serve artifacts through the server from this folder (see
            :func:`server_command`).
        workers: Server worker processes.
        wait: Block until the server answers ``/health``.
        timeout: Seconds to wait for it.
        log_path: File for the server's output (default: this process's stdout / stderr).
        extra_args: More ``mlflow server`` options (e.g. ``["--allowed-hosts", "myhost"]``).
        env: Extra environment for the server (on top of :data:`SERVER_ENV`).
        stream: Where the URL and warnings are printed (default: stderr).

    Raises:
        ConfigError: a non-loopback host without ``allow_remote``, a remote store, or a busy port.
        TrackingError: the server did not come up.
    """
    stream = stream or sys.stderr
    if host != LOOPBACK:
        if not allow_remote:
            raise ConfigError(
                f"refusing to bind the MLflow UI to {host!r}: it has no login, so anyone who reaches "
                f"the port gets every run. Use the default {LOOPBACK}, or pass --allow-remote "
                "(allow_remote=True) if you mean it"
            )
        _warn_remote(host, port, stream)
    if not 0 < int(port) < 65536:
        raise ConfigError(f"port must be 1..65535, got {port}")
    uri = resolve_tracking_uri(tracking_uri)
    if uri.startswith(("http://", "https://")):
        raise ConfigError(f"the tracking store is already a server: open {uri} in a browser")
    if _port_in_use(host, port):
        raise ConfigError(f"port {port} on {host} is already in use; pick another with --port")
    cmd = server_command(
        uri, host, port, artifacts_destination=artifacts_destination, workers=workers, extra_args=extra_args
    )
    full_env = {**os.environ, **SERVER_ENV, **dict(env or {})}
    log = Path(log_path) if log_path is not None else None
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env=full_env, start_new_session=True
            )
    else:
        proc = subprocess.Popen(cmd, env=full_env, start_new_session=True)
    url = f"http://{LOOPBACK if host in ('0.0.0.0', '::') else host}:{port}"
    server = UIServer(process=proc, url=url, host=host, port=int(port), log_path=log)
    if wait:
        secs = server.wait_ready(timeout)
        stream.write(f"MLflow UI for {uri} at {url} (pid {proc.pid}, ready in {secs:.1f} s)\n")
    else:
        stream.write(f"MLflow UI for {uri} starting at {url} (pid {proc.pid})\n")
    stream.flush()
    return server


__all__ = ["LOOPBACK", "UIServer", "free_port", "server_command", "start_ui"]
