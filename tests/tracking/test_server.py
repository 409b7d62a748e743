"""geograph ui / start_ui: loopback by default, remote only on request, clear refusals."""

from __future__ import annotations

import io
import urllib.request
from urllib.parse import urlparse

import pytest

from geograph.cli.main import main
from geograph.errors import ConfigError
from geograph.tracking.server import server_command, start_ui


def test_fixture_server_answers_on_loopback(mlflow_server: str) -> None:
    assert urlparse(mlflow_server).hostname == "127.0.0.1"
    with urllib.request.urlopen(f"{mlflow_server}/health", timeout=5) as resp:
        assert resp.status == 200


def test_non_loopback_host_needs_explicit_permission(capsys) -> None:
    with pytest.raises(ConfigError, match="refusing to bind the MLflow UI to '0.0.0.0'"):
        start_ui(host="0.0.0.0", port=5999)
    assert main(["ui", "--host", "0.0.0.0", "--port", "5999"]) == 2
    assert "--allow-remote" in capsys.readouterr().err


def test_remote_warning_is_loud_then_busy_port_is_refused(mlflow_server: str) -> None:
    port = urlparse(mlflow_server).port
    err = io.StringIO()
    with pytest.raises(ConfigError, match=f"port {port} on 0.0.0.0 is already in use"):
        start_ui(host="0.0.0.0", port=port, allow_remote=True, tracking_uri="sqlite:///x.db", stream=err)
    assert "WARNING" in err.getvalue() and "NO login" in err.getvalue()


def test_remote_store_has_its_own_ui(mlflow_server: str) -> None:
    with pytest.raises(ConfigError, match="already a server"):
        start_ui(port=5999, tracking_uri=mlflow_server)


def test_server_command_for_the_default_store(tmp_path) -> None:
    cmd = server_command(f"sqlite:///{tmp_path}/mlruns/mlflow.db", port=5123)
    assert cmd[1:4] == ["-m", "mlflow", "server"]
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and cmd[cmd.index("--port") + 1] == "5123"
    assert cmd[cmd.index("--default-artifact-root") + 1] == (tmp_path / "mlruns" / "artifacts").as_uri()
