"""Log runs to an MLflow store as fast as possible (run as a script, several at once).

    python tests/reliability/tracking_worker.py URI EXPERIMENT TAG RUNS STEPS

Opens RUNS runs with :func:`geograph.tracking.start_run` (params, tags), logs two metrics at
STEPS steps each (one ``log_metrics`` call per step, as training does every epoch) and a
final metric, and prints one JSON line: runs finished and seconds taken.
"""

from __future__ import annotations

import json
import sys
import time


def main(uri: str, experiment: str, tag: str, runs: int, steps: int) -> None:
    import mlflow

    from geograph.tracking import start_run

    print("ready", flush=True)
    sys.stdin.readline()  # the test starts every worker at once
    t0 = time.perf_counter()
    done = []
    for r in range(runs):
        params = {"worker": tag, "run": r, "train": {"seed": r, "lr": 0.01}}
        with start_run(
            experiment, run_name=f"{tag}-{r}", params=params, tags={"worker": tag}, tracking_uri=uri
        ) as run:
            for s in range(steps):
                mlflow.log_metrics({"train_loss": 1.0 / (s + 1), "val_r2": s / steps}, step=s)
            mlflow.log_metric("test_r2", 0.5 + r)
            done.append(run.info.run_id)
    print(json.dumps({"tag": tag, "runs": done, "seconds": round(time.perf_counter() - t0, 2)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
