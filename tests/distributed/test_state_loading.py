"""Per-state (out-of-core) loading: each rank reads only its states' partitions, the train-only
transforms and the metrics equal one process's, and a run resumes with another number of ranks."""

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch

from geograph import covisit as C
from geograph.covisit.config import CovisitConfig
from geograph.covisit.data import uses_state_loading
from geograph.covisit.sharded import plan_states, state_roles
from geograph.data import write_world
from geograph.data.state_scan import is_state_partitioned, load_state_world, state_sizes
from geograph.errors import ConfigError, DataValidationError
from geograph.graph.cache import load_checked
from geograph.testing import tiny_world
from geograph.tracking.server import free_port


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("partitioned") / "world"
    write_world(tiny_world(seed=3, n_pois=150, n_images=0), folder, partition_by="state")
    return folder


def _config(world_dir, out: Path, **train) -> dict:
    return {
        "data": {"world_dir": str(world_dir), "cache_dir": None, "loading": "per_state"},
        "model": {"hidden": 16, "head_hidden": [16]},
        "train": {
            "epochs": 3,
            "target_scaling": "zscore",
            "max_group_pois": 1,
            "checkpoint_dir": str(out / "ckpt"),
            "dist_timeout_s": 60,
            **train,
        },
        "tracking": {"experiment": "per_state"},
    }


def test_state_sizes_come_from_metadata_and_match_the_tables(world_dir):
    world = tiny_world(seed=3, n_pois=150, n_images=0)
    sizes = state_sizes(world_dir)
    assert set(sizes) == {"CA", "NY", "TX"}
    for s, v in sizes.items():
        assert v["pois"] == int((world.pois["state"] == s).sum())
        assert v["covisits"] == int((world.covisits["state"] == s).sum())
    assert is_state_partitioned(world_dir)
    # LPT over co-visit rows, largest first; every state on exactly one rank
    plan = plan_states(sizes, 2)
    assert sorted(sum(plan, [])) == ["CA", "NY", "TX"]
    largest = max(sizes, key=lambda s: sizes[s]["covisits"])
    assert plan[0][0] == largest or largest in plan[0]
    with pytest.raises(ConfigError, match="at most as many ranks as states"):
        plan_states(sizes, 4)


def test_load_state_world_reads_one_state_and_its_halo(world_dir):
    one = load_state_world(world_dir, "NY")
    assert set(one.world.pois["state"].to_list()) == {"NY"} and one.halo_pois == 0
    assert all("state=NY" in f for f in one.files["pois"] + one.files["covisits"])
    # a halo wide enough to reach other states adds their POIs as context only
    wide = load_state_world(world_dir, "NY", halo_km=5000.0)
    assert wide.core_pois == one.core_pois and wide.halo_pois > 0
    assert wide.world.pois.height == one.core_pois + wide.halo_pois
    assert wide.world.covisits.height == one.world.covisits.height


def test_bad_partition_row_is_named(tmp_path, world_dir):
    import polars as pl

    bad = tmp_path / "bad"
    write_world(tiny_world(seed=3, n_pois=150, n_images=0), bad, partition_by="state")
    part = bad / "pois" / "state=TX" / "part-0.parquet"
    df = pl.read_parquet(part)
    df = df.with_columns(
        pl.when(pl.int_range(pl.len()) == 4)
        .then(pl.lit(123.0))
        .otherwise(pl.col("latitude"))
        .alias("latitude")
    )
    df.write_parquet(part)
    with pytest.raises(DataValidationError) as exc:
        load_state_world(bad, "TX")
    assert exc.value.file == str(part) and exc.value.row == 4 and exc.value.field == "latitude"


def test_interrupted_world_write_is_refused_before_any_state_is_planned(tmp_path):
    import json

    folder = tmp_path / "w"
    write_world(tiny_world(seed=3, n_pois=150, n_images=0), folder, partition_by="state")
    manifest = folder / "manifest.json"
    doc = json.loads(manifest.read_text())
    doc["complete"] = False  # what a write_world killed between two tables leaves behind
    manifest.write_text(json.dumps(doc))
    with pytest.raises(DataValidationError, match="manifest"):
        state_sizes(folder)


def test_states_protocol_draws_the_same_states_as_the_whole_graph_split(world_dir):
    cfg = CovisitConfig.from_dict({"split": {"protocol": "states"}, "data": {"cache_dir": None}})
    prep = C.prepare(cfg, tiny_world(seed=3, n_pois=150, n_images=0))
    roles = state_roles(["CA", "NY", "TX"], cfg)
    assert {s: r for r, names in prep.split.groups.items() for s in names} == roles


def test_auto_loading_picks_per_state_for_a_partitioned_world(world_dir, tmp_path):
    cfg = CovisitConfig.from_dict({"data": {"world_dir": str(world_dir), "loading": "auto"}})
    assert uses_state_loading(cfg)
    write_world(tiny_world(seed=3, n_pois=150, n_images=0), tmp_path / "flat")
    flat = CovisitConfig.from_dict({"data": {"world_dir": str(tmp_path / "flat")}})
    assert not uses_state_loading(flat)
    with pytest.raises(ConfigError, match="partitioned by state"):
        uses_state_loading(
            CovisitConfig.from_dict({"data": {"world_dir": str(tmp_path / "flat"), "loading": "per_state"}})
        )


def test_two_ranks_load_only_their_states_and_match_one_process(tmp_path, world_dir):
    cfg_dict = _config(world_dir, tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(cfg_dict))
    env = dict(os.environ, OMP_NUM_THREADS="1", MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--nnodes",
        "1",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(free_port()),
        str(Path(__file__).with_name("state_worker.py")),
        str(tmp_path),
        str(world_dir),
    ]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stderr[-4000:]
    r = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in (0, 1)]

    # each rank read the rows of its own states only, and every state was read by one rank
    own = [set(x["loaded"]) for x in r]
    assert own[0] and own[1] and not (own[0] & own[1]) and own[0] | own[1] == {"CA", "NY", "TX"}
    for x, states in zip(r, own, strict=True):
        read_states = {Path(f).parent.name.split("=", 1)[1] for f in x["read_files"] if "state=" in f}
        assert read_states == states, (read_states, states)
        for s in states:
            assert x["loaded"][s]["halo_pois"] == 0 and x["loaded"][s]["endpoint_pois"] == 0
    assert r[0]["param_checksum"] == r[1]["param_checksum"] is not None
    assert r[0]["metrics"]["test_r2"] == r[1]["metrics"]["test_r2"]

    # exactly one MLflow run, written by rank 0, holding the weights and the fitted transforms
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["per_state"])
    assert len(runs) == 1 and runs.iloc[0]["run_id"] == r[0]["run_id"] and r[1]["run_id"] is None
    assert runs.iloc[0]["tags.geograph.loading"] == "per_state"
    assert runs.iloc[0]["metrics.data_pois"] == 150
    local = mlflow.artifacts.download_artifacts(
        run_id=r[0]["run_id"],
        artifact_path="model_state/model_state.pt",
        tracking_uri=uri,
        dst_path=str(tmp_path / "dl"),
    )
    state = load_checked(Path(local))

    # one process, all states: transforms equal the cross-rank ones, metrics of the same model equal
    cfg = CovisitConfig.from_dict(cfg_dict)
    prep = C.prepare(cfg)
    assert prep.shard.states == ["CA", "NY", "TX"]
    single = prep.pre.state_dict()
    for k in ("poi_mean", "poi_std", "cell_mean", "cell_std"):
        torch.testing.assert_close(single[k], state["preprocessor"][k], rtol=1e-6, atol=1e-6)
    for k in ("poi_log", "cell_log"):
        assert torch.equal(single[k], state["preprocessor"][k])
    assert single["vocab"] == state["preprocessor"]["vocab"]
    assert prep.weight_scale == pytest.approx(state["weight_scale"], rel=1e-9)
    scaler = C.TargetScaler("zscore").fit(prep.split.pairs["train"].visitors)
    assert (scaler.mean, scaler.std) == pytest.approx(
        (state["scaler"]["mean"], state["scaler"]["std"]), rel=1e-9
    )
    model = C.build_model(prep)
    model.load_state_dict(state["model"])
    metrics = C.evaluate.evaluate(C.FitResult(model, C.TargetScaler(**state["scaler"]), [], 0, 0.0), prep)
    for k in (
        "test_r2",
        "test_mae",
        "test_rmse",
        "test_spearman",
        "test_ndcg10",
        "test_recall10",
        "test_pairs",
        "val_r2",
    ):
        assert metrics[k] == pytest.approx(r[0]["metrics"][k], abs=1e-6), k

    # resume the 2-rank checkpoint (stopped after epoch 2 of 3) in one process
    run_id = r[0]["run_id"]
    ckpt = load_checked(tmp_path / "ckpt" / run_id / "last.pt")
    assert ckpt["epoch"] == 2
    # the run stopped as if killed: mark it so (a SIGKILLed run is not FINISHED), then resume it
    mlflow.tracking.MlflowClient(tracking_uri=uri).set_terminated(run_id, status="KILLED")
    resumed = C.run_from_config(
        {**cfg_dict, "train": {**cfg_dict["train"], "resume": run_id}}, tracking_uri=uri
    )
    assert resumed["world_size"] == 1 and resumed["run_id"] == run_id
    runs = mlflow.search_runs(experiment_names=["per_state"])
    tags = runs.set_index("run_id").loc[resumed["run_id"]]
    assert tags["tags.geograph.resumed_from_epoch"] == "2"
    hist = load_checked(tmp_path / "ckpt" / run_id / "last.pt")["history"]
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    assert [h["train_loss"] for h in hist[:2]] == [h["train_loss"] for h in ckpt["history"]]
    assert np.isfinite(resumed["metrics"]["test_r2"])


def test_a_state_above_split_states_above_is_trained_by_both_ranks_and_scored_exactly(tmp_path, world_dir):
    """train.split_states_above: CA (69 POIs) and NY (42) are split over the two ranks (each its
    part and a halo, the two states in one order on both ranks), TX goes to one rank and the
    other has no state of its own. Statistics count the split states once, the ranks end with
    the same weights, and one process scoring those weights on whole states gives the ranks'
    metrics."""
    cfg_dict = _config(world_dir, tmp_path, split_states_above=40)
    (tmp_path / "config.json").write_text(json.dumps(cfg_dict))
    env = dict(os.environ, OMP_NUM_THREADS="1", MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--nnodes", "1",
           "--master-addr", "127.0.0.1", "--master-port", str(free_port()),
           str(Path(__file__).with_name("state_worker.py")), str(tmp_path), str(world_dir)]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stderr[-4000:]
    r = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in (0, 1)]
    for x in r:  # both ranks read CA; NY and TX were read by one rank each
        read_states = {Path(f).parent.name.split("=", 1)[1] for f in x["read_files"] if "state=" in f}
        assert {"CA", "NY"} <= read_states and len(read_states) in (2, 3), read_states
        assert {"CA", "NY"} <= set(x["groups"])
    assert sum("TX" in x["groups"] for x in r) == 1
    assert r[0]["param_checksum"] == r[1]["param_checksum"] is not None
    assert r[0]["metrics"]["test_r2"] == r[1]["metrics"]["test_r2"]

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    run = mlflow.search_runs(experiment_names=["per_state"]).iloc[0]
    cfg = CovisitConfig.from_dict(cfg_dict)
    prep = C.prepare(cfg)  # one process: every state whole
    assert run["metrics.data_pois"] == 150
    assert run["metrics.data_pairs_train"] == len(prep.split.pairs["train"])
    assert run["metrics.data_message_train"] == prep.shard.summary["message_train"]
    local = mlflow.artifacts.download_artifacts(run_id=r[0]["run_id"], artifact_path="model_state/model_state.pt",
                                                tracking_uri=uri, dst_path=str(tmp_path / "dl"))
    state = load_checked(Path(local))
    single = prep.pre.state_dict()
    for k in ("poi_mean", "poi_std", "cell_mean", "cell_std"):
        torch.testing.assert_close(single[k], state["preprocessor"][k], rtol=1e-6, atol=1e-6)
    assert prep.weight_scale == pytest.approx(state["weight_scale"], rel=1e-9)
    scaler = C.TargetScaler("zscore").fit(prep.split.pairs["train"].visitors)
    assert (scaler.mean, scaler.std) == pytest.approx((state["scaler"]["mean"], state["scaler"]["std"]), rel=1e-9)
    model = C.build_model(prep)
    model.load_state_dict(state["model"])
    metrics = C.evaluate.evaluate(C.FitResult(model, C.TargetScaler(**state["scaler"]), [], 0, 0.0), prep)
    for k in ("test_r2", "test_mae", "test_spearman", "test_ndcg10", "test_recall10", "test_pairs", "val_r2"):
        assert metrics[k] == pytest.approx(r[0]["metrics"][k], abs=1e-5), k


def test_split_states_above_needs_full_batch_and_is_off_on_one_rank(world_dir):
    from geograph.covisit.sharded import shared_states

    with pytest.raises(ConfigError, match="full batch"):
        CovisitConfig.from_dict({"train": {"split_states_above": 10, "batch_size": 64}})
    with pytest.raises(ConfigError, match=">= 0"):
        CovisitConfig.from_dict({"train": {"split_states_above": -1}})
    cfg = CovisitConfig.from_dict({"train": {"split_states_above": 40}})
    sizes = state_sizes(world_dir)
    assert shared_states(sizes, cfg, 1) == []
    assert shared_states(sizes, cfg, 2) == ["CA", "NY"]
    assert plan_states(sizes, 2, ["CA", "NY"]) == [["TX"], []]
    assert cfg.hash() == CovisitConfig.from_dict({}).hash()  # how a run is computed, not what it computes


def test_per_state_candidates_stay_with_their_groups_and_are_ranked_there(world_dir, monkeypatch):
    import geograph.covisit.model as cm
    from geograph.metrics import ranking_metrics

    cfg = CovisitConfig.from_dict({
        "data": {"world_dir": str(world_dir), "loading": "per_state", "cache_dir": None},
        "model": {"hidden": 16, "head_hidden": [16]},
        "split": {"rank_negatives": 5},
    })
    prep = C.prepare(cfg)
    # no country-wide table of val / test pair features or ranking candidates on the rank
    assert prep.rank == {} and all(prep.pair_feats[k].shape[0] == 0 for k in ("val", "test"))
    assert prep.pair_feats["train"].shape[0] == len(prep.split.pairs["train"])
    assert sum(len(gd.feats["val"]) for gd in prep.groups) == len(prep.split.pairs["val"]) > 0
    n_cand = sum(len(gd.feats["rank_val"]) for gd in prep.groups)
    assert n_cand == prep.shard.summary["rank_candidates_val"] > 0
    torch.manual_seed(0)
    model = cm.build_model(prep)
    scaler = cm.TargetScaler("none").fit(prep.split.pairs["train"].visitors)
    seen = []
    real = cm.ranking_per_source
    monkeypatch.setattr(cm, "ranking_per_source", lambda *a, **k: seen.append(a) or real(*a, **k))
    pred, ranking = cm.predict_gnn(model, prep, "val", scaler, torch.device("cpu"))
    assert len(seen) == len(prep.groups) and sum(len(a[0]) for a in seen) == len(pred) + n_cand
    # group by group equals one ranking over the country's concatenated pairs and candidates
    whole = ranking_metrics(*(np.concatenate([a[i] for a in seen]) for i in range(3)), k=10)
    assert ranking == whole and ranking["ranked_sources"] > 0
    pairs_only, none = cm.predict_gnn(model, prep, "val", scaler, torch.device("cpu"), ranking=False)
    assert len(none) == 0 and len(seen) == len(prep.groups)
    np.testing.assert_array_equal(pred, pairs_only)


def test_split_states_above_with_whole_graph_loading_under_torchrun_is_refused(monkeypatch):
    import geograph.covisit.data as cdata
    from geograph.distributed import DistInfo

    monkeypatch.setattr(cdata, "dist_info", lambda: DistInfo(rank=0, world_size=2, local_rank=0))
    cfg = CovisitConfig.from_dict({"data": {"n_pois": 200}, "train": {"split_states_above": 50}})
    with pytest.raises(ConfigError, match="per-state loading"):
        C.prepare(cfg)
