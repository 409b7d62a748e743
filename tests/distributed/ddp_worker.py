"""One rank of the 2-rank DDP test (launched by torchrun from test_ddp.py)."""

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from geograph.covisit.run import run_from_config  # noqa: E402
from geograph.testing import tiny_world  # noqa: E402

out = Path(sys.argv[1])
cfg = {
    "data": {"cache_dir": None},
    "model": {"hidden": 16, "head_hidden": [16]},
    # max_group_pois=1: every state is its own group, so the three states are sharded over ranks
    "train": {"epochs": 2, "max_group_pois": 1, "checkpoint_dir": str(out / "ckpt"), "dist_timeout_s": 60},
    "tracking": {"experiment": "ddp"},
}
res = run_from_config(cfg, tracking_uri=f"sqlite:///{out}/mlflow.db", world=tiny_world(seed=3, n_pois=150, n_images=0))
(out / f"rank{res['rank']}.json").write_text(json.dumps(res))
