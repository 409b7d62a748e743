"""The co-visitation pipeline end to end on a tiny world (fast)."""


import mlflow
import numpy as np
import pandas as pd
import polars as pl
import pytest
import torch

from geograph import covisit as C
from geograph.covisit.config import CovisitConfig, apply_overrides
from geograph.errors import CheckpointError, ConfigError
from geograph.testing import tiny_world


@pytest.fixture(scope="module")
def world():
    return tiny_world(seed=3, n_pois=150, n_images=0)


def _cfg(tmp_path, **sections):
    base = {
        "data": {"cache_dir": None},
        "model": {"hidden": 16, "head_hidden": [16], "dropout": 0.0},
        "train": {"epochs": 4, "lr": 0.01, "checkpoint_dir": str(tmp_path / "ckpt"), "patience": 100},
    }
    for k, v in sections.items():
        base[k] = {**base.get(k, {}), **v}
    return CovisitConfig.from_dict(base)


def test_config_rejects_unknown_keys_and_bad_values():
    with pytest.raises(ConfigError, match="unknown key"):
        CovisitConfig.from_dict({"train": {"epocs": 3}})
    with pytest.raises(ConfigError, match="train.loss"):
        CovisitConfig.from_dict({"train": {"loss": "l7"}})
    with pytest.raises(ConfigError, match="top-level"):
        CovisitConfig.from_dict({"modle": {}})
    d = apply_overrides({"model": {"hidden": 8}}, ["model.hidden=32", "model.relations=[covisits, near]"])
    assert d["model"] == {"hidden": 32, "relations": ["covisits", "near"]}
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["model.hidden"])


def test_prepare_separates_supervision_from_messages(world, tmp_path):
    prep = C.prepare(_cfg(tmp_path), world)
    n = prep.graph.num_pois
    msg = prep.split.message["test"]
    msg_keys = set((msg[0] * n + msg[1]).tolist()) | set((msg[1] * n + msg[0]).tolist())
    for split in ("val", "test"):
        pk = prep.split.pairs[split]
        assert not (set((pk.src * n + pk.dst).tolist()) & msg_keys)
    # zero pairs are part of training and evaluation
    assert (prep.split.pairs["train"].visitors == 0).any()
    assert (prep.split.pairs["test"].visitors == 0).any()
    # ranking candidates are never co-visit rows
    rows = prep.graph.data["poi", "covisits", "poi"].edge_index
    row_keys = set((rows[0] * n + rows[1]).tolist())
    rk = prep.rank["test"]
    assert not (set((rk.src * n + rk.dst).tolist()) & row_keys)


@pytest.mark.parametrize("hide_by", ["pair", "source"])
def test_hiding_folds_partition_the_pairs(hide_by):
    src = torch.tensor([0, 0, 1, 2, 2, 2, 3, 5, 5, 7])
    perm = torch.randperm(len(src), generator=torch.Generator().manual_seed(4))
    folds = C.hiding_folds(src, perm, 3, hide_by)
    assert len(folds) == 3
    assert sorted(torch.cat(folds).tolist()) == list(range(len(src)))  # every pair once
    if hide_by == "source":
        owner = {}
        for f, fold in enumerate(folds):
            for s in src[fold].tolist():
                assert owner.setdefault(s, f) == f  # all of a source's pairs share one fold
        assert sorted(len(set(src[f].tolist())) for f in folds) == [2, 2, 2]  # 6 sources dealt evenly
    else:
        assert [len(f) for f in folds] == [4, 4, 2]
    with pytest.raises(ConfigError, match="split.hide_by"):
        CovisitConfig.from_dict({"split": {"hide_by": "state"}})
    # residual inputs: auto is on under edges, off under states and without weighted co-visits
    assert CovisitConfig.from_dict({"split": {"protocol": "edges"}}).model.residual_features is True
    assert CovisitConfig.from_dict({"split": {"protocol": "states"}}).model.residual_features is False
    off = {"split": {"protocol": "edges"}, "model": {"weighted_covisits": False}}
    assert CovisitConfig.from_dict(off).model.residual_features is False
    on = {"split": {"protocol": "states"}, "model": {"residual_features": True}}
    assert CovisitConfig.from_dict(on).model.residual_features is True
    with pytest.raises(ConfigError, match="residual_features"):
        CovisitConfig.from_dict({"model": {"residual_features": "sometimes"}})
    # auto hides the way each protocol evaluates
    assert CovisitConfig.from_dict({"split": {"protocol": "edges"}}).split.hiding == "source"
    assert CovisitConfig.from_dict({"split": {"protocol": "states"}}).split.hiding == "pair"
    assert CovisitConfig.from_dict({"split": {"protocol": "states", "hide_by": "source"}}).split.hiding == "source"


def test_training_by_source_folds_improves_and_resumes_identically(world, tmp_path):
    runs = []
    for name, stop in (("a", None), ("b", 2)):
        cfg = _cfg(tmp_path / name, train={"epochs": 4}, split={"hide_by": "source"})
        ckpt = tmp_path / name / "last.pt"
        fr = C.fit(C.prepare(cfg, world), stop_after_epoch=stop, checkpoint=ckpt)
        if stop:
            fr = C.fit(C.prepare(cfg, world), checkpoint=ckpt, resume=True)
        runs.append([h["train_loss"] for h in fr.history])
    assert runs[0][-1] < runs[0][0]
    assert runs[1] == pytest.approx(runs[0], abs=1e-6)


def test_training_improves_over_first_epoch(world, tmp_path):
    prep = C.prepare(_cfg(tmp_path, train={"epochs": 8}), world)
    fr = C.fit(prep)
    losses = [h["train_loss"] for h in fr.history]
    assert losses[-1] < losses[0]
    key = "val_observed_r2_log1p"  # train.monitor: early stopping and the kept epoch
    assert max(h[key] for h in fr.history) > fr.history[0][key]
    assert fr.best_epoch == int(np.argmax([h[key] for h in fr.history])) + 1


def test_test_metrics_come_from_best_validation_state(world, tmp_path):
    prep = C.prepare(_cfg(tmp_path, train={"epochs": 5}), world)
    fr = C.fit(prep)
    best = max(fr.history, key=lambda h: h["val_observed_r2_log1p"])
    m = C.evaluate.evaluate(fr, prep)
    assert m["val_observed_r2_log1p"] == pytest.approx(best["val_observed_r2_log1p"], abs=1e-6)
    assert m["val_r2"] == pytest.approx(best["val_r2"], abs=1e-6)


def test_resume_equals_uninterrupted(world, tmp_path):
    full = C.prepare(_cfg(tmp_path / "a", train={"epochs": 4}), world)
    fr_full = C.fit(full)
    m_full = C.evaluate.evaluate(fr_full, full)

    cfg_b = _cfg(tmp_path / "b", train={"epochs": 4})
    ckpt = tmp_path / "b" / "last.pt"
    C.fit(C.prepare(cfg_b, world), stop_after_epoch=2, checkpoint=ckpt)  # "killed" after epoch 2
    assert ckpt.exists()
    prep_b = C.prepare(cfg_b, world)
    fr_b = C.fit(prep_b, checkpoint=ckpt, resume=True)
    assert fr_b.resumed_from == 2
    m_b = C.evaluate.evaluate(fr_b, prep_b)
    assert [h["train_loss"] for h in fr_b.history] == pytest.approx([h["train_loss"] for h in fr_full.history], abs=1e-6)
    assert m_b["test_r2"] == pytest.approx(m_full["test_r2"], abs=1e-6)


def test_corrupt_checkpoint_is_a_clear_error(world, tmp_path):
    cfg = _cfg(tmp_path, train={"epochs": 1})
    ckpt = tmp_path / "last.pt"
    C.fit(C.prepare(cfg, world), checkpoint=ckpt)
    ckpt.write_bytes(ckpt.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        C.fit(C.prepare(cfg, world), checkpoint=ckpt, resume=True)


@pytest.mark.parametrize("family", ["gravity", "gbt"])
def test_sklearn_baselines_run_the_same_pipeline(world, tmp_path, family):
    prep = C.prepare(_cfg(tmp_path, model={"family": family, "gbt_max_iter": 20}), world)
    m = C.evaluate.evaluate(C.fit(prep), prep)
    for k in ("test_r2", "test_mae", "test_spearman", "test_ndcg10", "test_recall10"):
        assert np.isfinite(m[k])


def test_same_seed_same_numbers(world, tmp_path):
    a = C.evaluate.evaluate(*(lambda p: (C.fit(p), p))(C.prepare(_cfg(tmp_path / "x", train={"epochs": 2}), world)))
    b = C.evaluate.evaluate(*(lambda p: (C.fit(p), p))(C.prepare(_cfg(tmp_path / "y", train={"epochs": 2}), world)))
    assert a["test_r2"] == b["test_r2"]


def test_logged_model_loads_back_and_predicts_the_same(world, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cfg = {"data": {"cache_dir": None}, "model": {"hidden": 16}, "train": {"epochs": 2}}
    out = C.run_from_config(cfg, tracking_uri=uri, world=world)
    mlflow.set_tracking_uri(uri)
    run = mlflow.get_run(out["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.metrics["test_r2"] == pytest.approx(out["metrics"]["test_r2"])
    hist = mlflow.MlflowClient().get_metric_history(out["run_id"], "val_r2")
    assert [h.step for h in hist] == [1, 2]
    assert run.data.metrics["best_val_r2"] == pytest.approx(max(h.value for h in hist), abs=1e-6)
    preds = pl.read_csv(mlflow.artifacts.download_artifacts(run_id=out["run_id"], artifact_path="test_predictions.csv"))
    model = mlflow.pyfunc.load_model(f"runs:/{out['run_id']}/model")
    got = model.predict(pd.DataFrame({"src_poi_id": preds["src_poi_id"].to_list(), "dst_poi_id": preds["dst_poi_id"].to_list()}))
    np.testing.assert_allclose(got["predicted_visitors"].to_numpy(), preds["predicted_visitors"].to_numpy(), rtol=1e-4, atol=1e-4)
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(out["run_id"], "plots")}
    assert {"plots/pred_vs_actual.png", "plots/learning_curves.png"} <= arts


def test_bundle_evaluate_reproduces_logged_metrics(world, tmp_path):
    prep = C.prepare(_cfg(tmp_path, train={"epochs": 2}), world)
    fr = C.fit(prep)
    m = C.evaluate.evaluate(fr, prep)
    from geograph.covisit.predict import CovisitPredictor, save_bundle

    pred = CovisitPredictor.load(save_bundle(fr, prep, tmp_path / "bundle"))
    again = pred.evaluate("test")
    for k in ("test_r2", "test_mae", "test_spearman", "test_ndcg10", "test_recall10"):
        assert again[k] == pytest.approx(m[k], abs=1e-5)
    with pytest.raises(Exception, match="unknown POI id"):
        pred.predict_ids(["nope"], [pred.graph.index["poi_ids"][0]])
    assert torch.is_tensor(pred.embeddings())


def test_states_protocol_holds_out_whole_states(world, tmp_path):
    prep = C.prepare(_cfg(tmp_path, split={"protocol": "states"}), world)
    g = prep.split.groups
    assert len(g["train"]) >= 1 and len(g["test"]) == 1
    states = prep.graph.index["states"]
    st = prep.graph.data["poi"].state
    test_states = {states[i] for i in st[prep.split.pairs["test"].src].unique().tolist()}
    assert test_states == set(g["test"])
    assert not torch.isin(st[prep.split.pairs["train"].src], torch.tensor([states.index(s) for s in g["test"]])).any()


def test_observed_metrics_leave_sampled_zeros_out(world, tmp_path):
    prep = C.prepare(_cfg(tmp_path, split={"neg_ratio": 1.0}, train={"epochs": 2}), world)
    test = prep.split.pairs["test"]
    assert (~test.observed).any() and (test.visitors[~test.observed] == 0).all()  # sampled zeros exist
    m = C.evaluate.evaluate(C.fit(prep), prep)
    assert m["test_observed_pairs"] == float(test.observed.sum()) < m["test_pairs"]
    for k in ("r2_log1p", "mae_log1p", "rmse_log1p", "spearman", "r2_raw", "cpc", "jsd"):
        assert np.isfinite(m[f"test_observed_{k}"]), k
    for k in ("ndcg10", "recall10", "hit10", "mrr"):
        assert 0.0 <= m[f"test_{k}"] <= 1.0, k
