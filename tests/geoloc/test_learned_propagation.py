"""Learned place-graph propagation (``propagation.graph_mode: learned``): the GNN, the
self-excluding neighbours, no leak of a training query's coordinates, joint training,
determinism, selection and the config checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from geograph.errors import ConfigError
from geograph.geolocate.config import GeolocateConfig
from geograph.geolocate.data import GeoData
from geograph.geolocate.model import build_head, build_refiner
from geograph.geolocate.select import select_all
from geograph.geolocate.train import LearnedRetrieval, fit, refined_values
from geograph.nn.place_graph import place_graph
from geograph.nn.place_graph_refiner import PlaceGraphRefiner
from geograph.nn.query_retrieval import QueryRetrievalAugmentation, mix_values, retrieval_neighbours

CENTRES = np.array([[48.8, 2.3], [40.7, -74.0], [35.7, 139.7], [-33.9, 151.2]])
EDGES = ["knn", "h3", "group"]


def tiny_data(n: int = 120, dim: int = 12, seed: int = 0) -> GeoData:
    """Places around four cities; a query is its city's direction plus noise; groups = city."""
    rng = np.random.default_rng(seed)
    c = rng.integers(0, len(CENTRES), n)
    ll = CENTRES[c] + rng.normal(0, 0.5, (n, 2))
    q = (rng.normal(size=(len(CENTRES), dim))[c] + 0.5 * rng.normal(size=(n, dim))).astype(np.float32)
    perm = rng.permutation(n)
    split = {"test": np.sort(perm[:20]), "val": np.sort(perm[20:36]), "train": np.sort(perm[36:])}
    return GeoData(q, ll, np.ones(n), [str(i) for i in range(n)], split, "files", "tiny", [str(x) for x in c])


def tiny_cfg(**prop) -> GeolocateConfig:
    p = {
        "range_weight": 0.0,
        "query_weight": 1.0,
        "query_weight_grid": [1.0],
        "query_top_k": 4,
        "graph_edges": EDGES,
        "graph_mode": "learned",
        "graph_hidden": 8,
        "graph_h3_resolution": 3,
    }
    p.update(prop)
    return GeolocateConfig.from_dict(
        {
            "encoder": {"name": "sinusoidal", "pretrained": False, "options": {"hidden": 16, "out_dim": 8}},
            "head": {"hidden": 16, "queue_size": 32},
            "train": {"epochs": 2, "batch_size": 16, "device": "cpu", "checkpoint": False, "progress": False},
            "predict": {
                "top_k": 8,
                "kde_grid": [None, 100.0],
                "kde_temperature_grid": [1.0],
                "fusion_weight": 0.0,
            },
            "propagation": p,
        }
    )


def test_refiner_repr_shapes_identity_at_start_and_masking():
    g = torch.Generator().manual_seed(0)
    z = F.normalize(torch.randn(6, 4, generator=g), dim=-1)
    q = torch.randn(6, 3, generator=g)
    ei = torch.tensor([[0, 1, 1, 2, 3, 4], [1, 0, 2, 1, 4, 3]])
    ref = PlaceGraphRefiner(4, 3, hidden=5, num_layers=2, seed=0)
    assert str(ref) == "PlaceGraphRefiner(value_dim=4, query_dim=3, hidden=5, num_layers=2)"
    out = ref(z, q, ei)
    assert out.shape == (6, 4) and torch.allclose(out, z, atol=1e-6)  # the output layer starts at zero
    torch.nn.init.normal_(ref.lin_out.weight, generator=g)
    mask = torch.tensor([False, True, False, False, False, False])
    a = ref(z, q, ei, mask)
    z2 = z.clone()
    z2[1] = -z2[1]
    assert torch.equal(ref(z2, q, ei, mask), a)  # a masked place's value is not read
    assert not torch.allclose(ref(z2, q, ei), ref(z, q, ei))
    assert torch.allclose(a.norm(dim=1), torch.ones(6))
    with pytest.raises(ValueError, match=r"values must have shape \(N, 4\)"):
        ref(z[:, :3], q, ei)
    with pytest.raises(ValueError, match=r"queries must have shape \(6, 3\)"):
        ref(z, q[:, :2], ei)
    with pytest.raises(ValueError, match="hidden"):
        PlaceGraphRefiner(4, 3, hidden=0)


def test_refiner_is_seeded():
    a, b, c = (PlaceGraphRefiner(4, 3, seed=s) for s in (0, 0, 1))
    torch.manual_seed(99)  # the global generator must not matter
    sa, sb, sc = (m.state_dict() for m in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["lin_in.weight"], sc["lin_in.weight"])


def test_neighbours_exclude_self_and_match_the_fixed_retrieval():
    g = torch.Generator().manual_seed(1)
    db = torch.randn(10, 5, generator=g)
    idx, w = retrieval_neighbours(db, db, top_k=3, temperature=20.0, exclude=torch.arange(10))
    assert idx.shape == (10, 3) and not (idx == torch.arange(10)[:, None]).any()
    assert torch.allclose(w.sum(1), torch.ones(10))
    idx0, _ = retrieval_neighbours(db, db, top_k=3)
    assert torch.equal(idx0[:, 0], torch.arange(10))  # without the exclusion a row finds itself first
    values = F.normalize(torch.randn(10, 4, generator=g), dim=-1)
    q = torch.randn(4, 5, generator=g)
    i, w = retrieval_neighbours(q, db, top_k=3, temperature=20.0)
    aug = QueryRetrievalAugmentation(db, values, temperature=20.0, top_k=3)
    assert torch.allclose(mix_values(w, i, values), aug.retrieve(q), atol=1e-6)
    with pytest.raises(ValueError, match="exclude must have shape"):
        retrieval_neighbours(db, db, exclude=torch.arange(3))
    with pytest.raises(ValueError, match="one width"):
        retrieval_neighbours(q[:, :2], db)


def test_a_training_query_never_sees_its_own_coordinates():
    """Moving the batch's places elsewhere (their coordinates, hence their location embeddings
    and H3 edges) leaves every refined value the batch retrieves unchanged."""
    cfg = tiny_cfg()
    data = tiny_data()
    rows = data.split["train"]
    batch = torch.tensor([0, 3, 7, 11])
    moved = GeoData(**{**data.__dict__, "latlon": data.latlon.copy()})
    moved.latlon[rows[batch.numpy()]] = CENTRES[(np.arange(4) + 1) % 4]  # each to another city
    head = build_head(cfg, data.query_dim)
    ref = build_refiner(cfg, head.location_encoder.out_dim, data.query_dim)
    torch.nn.init.normal_(ref.lin_out.weight, generator=torch.Generator().manual_seed(0))
    out = []
    for d in (data, moved):
        joint = LearnedRetrieval(cfg, head, ref, d, torch.device("cpu"))
        assert not (joint.nbr == torch.arange(len(rows))[:, None]).any()  # no self-retrieval
        with torch.no_grad():
            z = head.encode_locations(torch.as_tensor(d.latlon[rows], dtype=torch.float32))
            out.append((joint.values(z, batch), joint.values(z), joint.geo_edges))
    assert not torch.equal(out[0][2], out[1][2])  # the H3 graph does depend on the coordinates
    assert torch.allclose(out[0][0], out[1][0], atol=1e-6)  # ... but not what the batch trains on
    assert not torch.allclose(out[0][1], out[1][1])  # unmasked (inference), it would


def test_joint_training_reaches_the_gnn_is_deterministic_and_selects():
    cfg, data = tiny_cfg(), tiny_data()
    head = build_head(cfg, data.query_dim)
    ref = build_refiner(cfg, head.location_encoder.out_dim, data.query_dim)
    joint = LearnedRetrieval(cfg, head, ref, data, torch.device("cpu"))
    ll = torch.as_tensor(data.latlon[data.split["train"]], dtype=torch.float32)
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    for _ in range(2):  # the zero output layer learns first, the layers below from the next step
        opt.zero_grad()
        joint(torch.arange(16), ll, head.encode_locations(ll), False).backward()
        opt.step()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in ref.parameters())

    fr = fit(cfg, data)
    assert fr.refiner is not None and fr.query_values is not None
    assert fr.query_values.shape == (len(data.split["train"]), 8)
    assert fr.refiner.lin_out.weight.abs().sum() > 0  # trained away from the identity
    again = fit(cfg, data)
    assert torch.equal(fr.query_values, again.query_values)
    assert all(
        torch.equal(a, b)
        for a, b in zip(fr.head.state_dict().values(), again.head.state_dict().values(), strict=True)
    )
    other = fit(
        GeolocateConfig.from_dict({**cfg.to_dict(), "train": {**cfg.to_dict()["train"], "seed": 1}}), data
    )
    assert not torch.allclose(other.query_values, fr.query_values)
    assert torch.allclose(refined_values(cfg, fr.head, fr.refiner, data), fr.query_values, atol=1e-5)

    sel = select_all(cfg, data, fr)["median_km"]
    assert sel.choice["query_weight"] == 1.0
    assert torch.equal(sel.predictor.query_aug.db_values, fr.query_values.float())
    fr.query_values = None
    with pytest.raises(ValueError, match="needs a head trained with it"):
        select_all(cfg, data, fr)


def test_config_checks_and_training_key():
    with pytest.raises(ConfigError, match="propagation.graph_mode must be one of"):
        tiny_cfg(graph_mode="gnn")
    with pytest.raises(ConfigError, match="propagation.graph_edges"):
        tiny_cfg(graph_edges=[])
    with pytest.raises(ConfigError, match="graph_hidden and propagation.graph_layers must be >= 1"):
        tiny_cfg(graph_layers=0)
    with pytest.raises(ConfigError, match="set propagation.query_weight > 0"):
        tiny_cfg(query_weight=0.0)
    learned, fixed = tiny_cfg(), tiny_cfg(graph_mode="fixed")
    assert learned.training_key() != fixed.training_key()
    assert tiny_cfg(graph_hidden=4).training_key() != learned.training_key()
    # the fixed mode trains the plain head: its key ignores the retrieval and GNN settings
    assert tiny_cfg(graph_mode="fixed", graph_hidden=4, query_top_k=9).training_key() == fixed.training_key()
    data = tiny_data()
    data.groups = None
    with pytest.raises(ConfigError, match="has 'group' but data.source 'files' has no groups"):
        fit(learned, data)


def test_place_graph_of_the_fixture_has_every_edge_kind():
    data = tiny_data()
    rows = data.split["train"]
    for kinds in (["knn"], ["h3"], ["group"]):
        ei = place_graph(
            data.latlon[rows],
            kinds=kinds,
            embeddings=data.queries[rows],
            groups=[data.groups[i] for i in rows],
            h3_resolution=3,
        )
        assert ei.shape[1] > 0


def test_a_saved_learned_geolocator_predicts_the_same(tmp_path):
    from geograph.geolocate.predict import load_geolocator, save_geolocator
    from geograph.geolocate.select import predict_with

    cfg, data = tiny_cfg(), tiny_data()
    fr = fit(cfg, data)
    sel = select_all(cfg, data, fr)["median_km"]
    q, _ = data.part("test")
    ll, conf = predict_with(sel, q)
    loaded = load_geolocator(save_geolocator(cfg, sel, data, tmp_path))
    assert torch.equal(loaded.predictor.query_aug.db_values, fr.query_values.float())
    p = loaded.predictor.predict(q)
    np.testing.assert_allclose(p.latlon, ll, atol=1e-6)
