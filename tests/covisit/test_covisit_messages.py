"""Message weights and the gravity baseline behind the residual inputs."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LinearRegression

from geograph.constants import COVISITS, POI
from geograph.covisit.messages import (
    GravityBaseline,
    gravity_design,
    log_mass,
    message_weights,
    resolve_mass_feature,
)
from geograph.errors import ConfigError
from geograph.graph import GraphConfig, build_graph
from geograph.testing import tiny_world


@pytest.fixture(scope="module")
def graph():
    return build_graph(tiny_world(seed=5, n_pois=120, n_images=0), GraphConfig(image_k=0))


def test_baseline_matches_scikit_learn_and_split_sums(graph):
    rows = graph.data[POI, COVISITS, POI]
    src, dst, vis = rows.edge_index[0], rows.edge_index[1], rows.visitors
    base = GravityBaseline.fit(graph, src, dst, vis)
    x = gravity_design("visits", graph, src, dst)
    ref = LinearRegression().fit(x, np.log1p(vis.double().numpy()))
    np.testing.assert_allclose(base.coef, [ref.intercept_, *ref.coef_], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(base.predict(graph, src, dst), ref.predict(x), rtol=1e-6, atol=1e-8)
    # two "ranks" adding their normal equations solve the same system as one process
    half = len(src) // 2
    y = np.log1p(vis.double().numpy())
    a1, b1 = GravityBaseline.normal_equations(x[:half], y[:half])
    a2, b2 = GravityBaseline.normal_equations(x[half:], y[half:])
    np.testing.assert_allclose(GravityBaseline.solve(a1 + a2, b1 + b2).coef, base.coef, rtol=1e-9)
    with pytest.raises(ConfigError, match="mass_feature"):
        gravity_design("footfall", graph, src, dst)


def _renamed(graph, names: dict[str, str]):
    """``graph`` with its POI features renamed (what another data source calls them)."""
    import copy

    g = copy.copy(graph)
    g.index = dict(graph.index, poi_feature_names=[names.get(n, n) for n in graph.index["poi_feature_names"]])
    return g


def test_auto_mass_takes_the_visit_count_the_pois_have(graph):
    rows = graph.data[POI, COVISITS, POI]
    src, dst, vis = rows.edge_index[0], rows.edge_index[1], rows.visitors
    assert resolve_mass_feature("auto", graph) == "visits"
    np.testing.assert_array_equal(gravity_design("auto", graph, src, dst), gravity_design("visits", graph, src, dst))
    # an imported Patterns file has raw_visitor_counts where the embedded world has visits
    patterns = _renamed(graph, {"visits": "raw_visitor_counts"})
    assert resolve_mass_feature("auto", patterns) == "raw_visitor_counts"
    base = GravityBaseline.fit(patterns, src, dst, vis, "auto")
    assert base.mass_feature == "raw_visitor_counts"  # a saved baseline names its column
    np.testing.assert_allclose(base.coef, GravityBaseline.fit(graph, src, dst, vis, "visits").coef, rtol=1e-12)
    with pytest.raises(ConfigError, match="'visits' is not a POI feature"):
        gravity_design("visits", patterns, src, dst)
    # POIs without any visit count: no mass, the baseline fits distance alone
    bare = _renamed(graph, {"visits": "footfall_index"})
    assert resolve_mass_feature("auto", bare) == "none"
    np.testing.assert_array_equal(log_mass("auto", bare, src), np.zeros(len(src)))
    base = GravityBaseline.fit(bare, src, dst, vis, "auto")
    assert base.mass_feature == "none"
    x = gravity_design("none", bare, src, dst)[:, :1]
    ref = LinearRegression().fit(x, np.log1p(vis.double().numpy()))
    np.testing.assert_allclose(base.predict(bare, src, dst), ref.predict(x), rtol=1e-6, atol=1e-8)


def test_message_weights_carry_the_rows_counts_and_residuals(graph):
    rows = graph.data[POI, COVISITS, POI]
    msg = rows.edge_index[:, :10]
    y = np.log1p(rows.visitors[:10].double().numpy())
    w = message_weights(graph, msg, 2.0)
    assert w.shape == (10,)
    np.testing.assert_allclose(w.numpy(), y / 2.0, rtol=1e-6)
    base = GravityBaseline.fit(graph, rows.edge_index[0], rows.edge_index[1], rows.visitors)
    wr = message_weights(graph, msg, 2.0, base)
    assert wr.shape == (10, 2) and torch.equal(wr[:, 0], w)
    np.testing.assert_allclose(wr[:, 1].numpy(), y - base.predict(graph, msg[0], msg[1]), rtol=1e-5, atol=1e-5)
    assert message_weights(graph, msg[:, :0], 2.0, base).shape == (0, 2)
