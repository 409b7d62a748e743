"""The same seed gives bit-identical weights and metrics for any CPU thread count.

Each training runs in its own process (MKL fixes its reproducibility mode at its first
call, see geograph.utils.determinism), with ``train.threads`` set to 1 and to 3. 1,500 POIs: large enough that MKL's default mode
splits weight-gradient sums over threads (with ``MKL_CBWR=AUTO`` the weights differ), and the
fused LayerNorm backward differs at any size.
"""

import json
import os
import subprocess
import sys

import pytest

SCRIPT = """
import json, sys
from geograph.covisit.config import CovisitConfig
from geograph.covisit.run import run
from geograph.train import param_checksum
cfg = CovisitConfig.from_dict({"data": {"n_pois": 1500}, "train": {"epochs": 2, "threads": int(sys.argv[1]),
                               "seed": 0, "progress": False}})
out = run(cfg)
m = {k: v for k, v in out["metrics"].items() if k.startswith("test_")}
print(json.dumps({"params": param_checksum(out["fit"].model), "metrics": m}))
"""


def _train(threads: int, env: dict[str, str]) -> dict:
    res = subprocess.run([sys.executable, "-c", SCRIPT, str(threads)], capture_output=True, text=True,
                         env=env, timeout=300, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_covisit_training_is_bit_identical_for_1_and_3_threads() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MKL_CBWR", "OMP_NUM_THREADS")}
    one, three = _train(1, env), _train(3, env)
    assert one["params"] == three["params"]
    assert one["metrics"] == three["metrics"]



@pytest.mark.slow
def test_the_control_without_mkl_reproducibility_differs() -> None:
    """MKL_CBWR set empty (MKL's own default): the same training gives other weights at 3 threads."""
    env = {**{k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}, "MKL_CBWR": ""}
    assert _train(1, env)["params"] != _train(3, env)["params"]
