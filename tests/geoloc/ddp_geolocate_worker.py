"""One rank of the 2-rank geolocation DDP test (launched by torchrun from test_distributed.py)."""

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import torch  # noqa: E402

from geograph.distributed import cleanup, init_from_env  # noqa: E402
from geograph.geolocate.run import run_from_config  # noqa: E402
from geograph.retrieval.search import (  # noqa: E402
    chunked_topk,
    distributed_search,
    gather_shards,
    shard_bounds,
    sharded_topk,
)

out = Path(sys.argv[1])
cfg = {
    "name": "geo_ddp",
    "data": {"source": "world", "n_pois": 300, "n_images": 600},
    "encoder": {"name": "sinusoidal", "pretrained": False},
    "head": {"hidden": 32, "queue_size": 128},
    "train": {
        "epochs": 3,
        "batch_size": 64,
        "device": "cpu",
        "checkpoint_dir": str(out / "ckpt"),
        "dist_timeout_s": 60,
    },
    "predict": {"top_k": 16, "kde_grid": [None, 200.0], "kde_temperature_grid": [1.0]},
    "propagation": {"range_weight": 1.0, "range_weight_grid": [1.0]},
    "tracking": {"experiment": "geo_ddp", "log_model": False, "log_plots": False},
}
info = init_from_env(60)  # the group outlives run_from_config for the search checks below
res = run_from_config(cfg, tracking_uri=f"sqlite:///{out}/mlflow.db")

# sharded search and sharded embedding against one process's answer on the same (seeded) data;
# 1,001 gallery rows: the shards differ in size
g = torch.Generator().manual_seed(7)
keys, queries = torch.randn(1001, 24, generator=g), torch.randn(40, 24, generator=g)
ref_s, ref_i = chunked_topk(queries, keys, 10, chunk_size=97)
with distributed_search():
    s, i = sharded_topk(queries, keys, 10, chunk_size=97)
    lo, hi = shard_bounds(len(keys), info.rank, info.world_size)
    gathered = gather_shards(keys[lo:hi] * 2, len(keys))
res["shard"] = [lo, hi]
res["topk_equal"] = bool(torch.equal(i, ref_i) and torch.equal(s, ref_s))
res["gather_equal"] = bool(torch.equal(gathered, keys * 2))
(out / f"rank{res['rank']}.json").write_text(json.dumps(res))
cleanup()
