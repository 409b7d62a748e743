"""Shared test setup: quiet MLflow progress bars, one torch thread, MLflow stores and server.

The test graphs are tiny: a second intra-op thread buys nothing there, and on a busy 2-core
machine OpenMP's spinning threads slow every test down many times over.

MLflow fixtures (used by tests/tracking and tests/experiments): a real tracking server, the
local default store, and fresh experiment names. The server is ``mlflow server`` started as a
subprocess on 127.0.0.1 (free port) with a SQLite backend store and proxied artifacts in a
temporary folder, waited for (at most 60 s) and stopped by its process-group id. It is shared
by the whole session (startup ~6 s on an idle machine).

Creating an MLflow SQLite database runs its schema migrations (1.5 s idle, 8 s on a busy
2-core machine), so one empty, migrated database is made per session through
``geograph.tracking.configure`` and copied wherever a fresh store is needed.
"""

import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import settings  # noqa: E402
from hypothesis.configuration import set_hypothesis_home_dir  # noqa: E402
from hypothesis.database import DirectoryBasedExampleDatabase  # noqa: E402

from geograph.tracking import configure, resolve_tracking_uri  # noqa: E402
from geograph.tracking.server import free_port, start_ui  # noqa: E402

# Hypothesis keeps its example database and caches under the system temporary folder, never in
# the working tree (set before any test runs).
HYPOTHESIS_HOME = Path(tempfile.gettempdir()) / "geograph-hypothesis"
set_hypothesis_home_dir(HYPOTHESIS_HOME)
settings.register_profile("geograph", database=DirectoryBasedExampleDatabase(HYPOTHESIS_HOME / "examples"))
settings.load_profile("geograph")

torch.set_num_threads(1)

SERVER_READY_TIMEOUT_S = 60.0


@pytest.fixture(scope="session")
def empty_store_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite database at the current schema, made by ``configure``."""
    db = tmp_path_factory.mktemp("template") / "mlflow.db"
    configure(f"sqlite:///{db}")
    assert db.is_file()
    return db


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory, empty_store_db: Path) -> Iterator[str]:
    """URI of a real MLflow tracking server (SQLite store + artifacts in a temp folder)."""
    root = tmp_path_factory.mktemp("mlflow_server")
    shutil.copyfile(empty_store_db, root / "mlflow.db")
    server = start_ui(
        port=free_port(),
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        artifacts_destination=root / "artifacts",
        log_path=root / "server.log",
        timeout=SERVER_READY_TIMEOUT_S,
    )
    try:
        yield server.url
    finally:
        server.stop()
        assert server.process.poll() is not None, "mlflow server still running after stop()"


def use_local_store(root: Path, monkeypatch: pytest.MonkeyPatch, empty_db: Path) -> str:
    """Make ``root`` the working directory and give it a fresh local default store."""
    monkeypatch.chdir(root)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (root / "mlruns").mkdir()
    shutil.copyfile(empty_db, root / "mlruns" / "mlflow.db")
    uri = resolve_tracking_uri()
    assert uri == f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    return uri


@pytest.fixture(scope="session")
def make_local_store(empty_store_db: Path) -> Callable[[Path, pytest.MonkeyPatch], str]:
    """``make_local_store(root, monkeypatch) -> uri``, for module-scoped stores."""
    return lambda root, monkeypatch: use_local_store(root, monkeypatch, empty_store_db)


@pytest.fixture
def local_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_store_db: Path) -> str:
    """The local default store (sqlite:///mlruns/mlflow.db) with the working directory in tmp_path."""
    return use_local_store(tmp_path, monkeypatch, empty_store_db)


@pytest.fixture(autouse=True)
def _no_leaked_run() -> Iterator[None]:
    """End any MLflow run a test left active (a no-op when the test never imported mlflow)."""
    yield
    mlflow = sys.modules.get("mlflow")
    while mlflow is not None and mlflow.active_run() is not None:
        mlflow.end_run(status="KILLED")


@pytest.fixture
def experiment_name() -> str:
    """A fresh experiment name (the server is shared by every test of the session)."""
    return f"exp-{uuid.uuid4().hex[:8]}"
