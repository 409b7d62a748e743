"""One rank of the per-state (out-of-core) 2-rank test, launched by torchrun from test_state_loading.py.

Records every part file whose rows it reads (``_scan_parts`` is the one place row data of a
state-partitioned world is read), then trains as if killed after epoch 2 of 3.
"""

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import geograph.data.state_scan as scan  # noqa: E402
from geograph.covisit.run import run_from_config  # noqa: E402

out, world_dir = Path(sys.argv[1]), sys.argv[2]
read: list[str] = []
_orig = scan._scan_parts


def _recording(parts, table, where, columns=None):
    read.extend(str(f) for _, f in parts)
    return _orig(parts, table, where, columns)


scan._scan_parts = _recording
cfg = json.loads((out / "config.json").read_text())
res = run_from_config(cfg, tracking_uri=f"sqlite:///{out}/mlflow.db", stop_after_epoch=2)
res["read_files"] = sorted(set(read))
(out / f"rank{res['rank']}.json").write_text(json.dumps(res))
