"""StatePartitioner: no edge inside a state is lost, halo / extra POIs are context, local pointers."""

from __future__ import annotations

import pytest
import torch
from graph_worlds import covisit_frame, poi_frame

from geograph.constants import CELL, COVISITS, IMAGE, IN, NEAR, POI
from geograph.data.world_io import World
from geograph.errors import DataValidationError
from geograph.graph import GeoGraph, GraphConfig, StatePartitioner, build_graph
from geograph.testing import hand_made_world, tiny_world


@pytest.fixture(scope="module")
def hand_graph() -> GeoGraph:
    # near radius 5000 km: near edges also join CA and NY, so cross-state edges exist
    return build_graph(
        hand_made_world(), GraphConfig(cell_resolution=7, near_k=3, near_radius_km=5000, image_k=1)
    )


@pytest.fixture(scope="module")
def tiny_graph() -> GeoGraph:
    return build_graph(tiny_world(n_pois=60), GraphConfig(cell_resolution=6, cell_k=2, near_k=4, image_k=2))


def global_nodes(graph: GeoGraph, poi_idx: torch.Tensor) -> dict[str, torch.Tensor]:
    """The documented node sets: the POIs, their cells, and the images in those cells (sorted)."""
    d = graph.data
    cells = torch.unique(d[POI].cell[poi_idx])
    out = {POI: torch.sort(poi_idx).values, CELL: cells}
    if IMAGE in d.node_types:
        ei = d[IMAGE, IN, CELL].edge_index
        out[IMAGE] = torch.unique(ei[0][torch.isin(ei[1], cells)])
    return out


def assert_induced(graph: GeoGraph, sub, nodes: dict[str, torch.Tensor]) -> None:
    """Every global edge with both ends in ``nodes`` is in ``sub`` (relabelled), and no other."""
    d = graph.data
    local = {}
    for nt, idx in nodes.items():
        assert sub.data[nt].num_nodes == len(idx), nt
        torch.testing.assert_close(sub.data[nt].pos, d[nt].pos[idx])  # same nodes, in this order
        m = torch.full((d[nt].num_nodes,), -1, dtype=torch.long)
        m[idx] = torch.arange(len(idx))
        local[nt] = m
    assert torch.equal(sub.poi_index, nodes[POI])
    for et in d.edge_types:
        s_t, _, d_t = et
        ei = d[et].edge_index
        keep = (local[s_t][ei[0]] >= 0) & (local[d_t][ei[1]] >= 0)
        want = {
            (int(a), int(b)) for a, b in zip(local[s_t][ei[0][keep]], local[d_t][ei[1][keep]], strict=True)
        }
        got = set(zip(sub.data[et].edge_index[0].tolist(), sub.data[et].edge_index[1].tolist(), strict=True))
        assert got == want, et
        assert sub.data[et].edge_index.size(1) == int(keep.sum()), et
        for attr in ("visitors", "edge_attr"):
            if attr in d[et]:
                assert torch.equal(sub.data[et][attr], d[et][attr][keep]), (et, attr)


@pytest.mark.parametrize("which", ["hand", "tiny"])
def test_no_edge_inside_a_state_is_lost(request, which):
    graph = request.getfixturevalue(f"{which}_graph")
    part = StatePartitioner(graph)
    state = graph.data[POI].state
    seen = []
    for sub in part:
        s = part.states.index(sub.state)
        core = torch.nonzero(state == s).flatten()
        assert sub.core_mask.all()  # no halo, no extras: every POI is core
        assert_induced(graph, sub, global_nodes(graph, core))
        # every co-visit / near edge with both POIs in the state is there
        for rel in (COVISITS, NEAR):
            ei = graph.data[POI, rel, POI].edge_index
            inside = (state[ei[0]] == s) & (state[ei[1]] == s)
            got = set(
                zip(
                    sub.poi_index[sub.data[POI, rel, POI].edge_index[0]].tolist(),
                    sub.poi_index[sub.data[POI, rel, POI].edge_index[1]].tolist(),
                    strict=True,
                )
            )
            assert {(int(a), int(b)) for a, b in ei[:, inside].t()} <= got
        seen.append(sub.state)
    assert seen == graph.index["states"]


def test_hand_made_state_subgraphs_exact(hand_graph):
    part = StatePartitioner(hand_graph)
    assert repr(part) == "StatePartitioner(states=2, halo_km=0.0)"
    ca, ny = part.subgraph("CA"), part.subgraph("NY")
    assert ca.poi_index.tolist() == [0, 1, 2, 3, 4] and ny.poi_index.tolist() == [5, 6, 7]
    # CA co-visits: p0-p1, p0-p2, p1-p2, p0-p3, p2-p3, p1-p4, p3-p4; NY: p5-p6, p5-p7, p6-p7
    assert ca.data[POI, COVISITS, POI].edge_index.size(1) == 7
    assert ny.data[POI, COVISITS, POI].edge_index.tolist() == [[0, 0, 1], [1, 2, 2]]
    assert ny.data[POI, COVISITS, POI].visitors.tolist() == [80, 1, 0]
    assert ca.data[IMAGE].num_nodes == 2 and ny.data[IMAGE].num_nodes == 2
    assert ca.local_of.tolist() == [0, 1, 2, 3, 4, -1, -1, -1]
    assert part.edge_counts(hand_graph.data[POI, COVISITS, POI].edge_index[0]) == {"CA": 7, "NY": 3}


def test_subgraph_poi_cell_pointer_is_local(tiny_graph):
    part = StatePartitioner(tiny_graph, halo_km=50.0)
    for sub in part:
        d = sub.data
        assert d[POI].cell.max() < d[CELL].num_nodes
        assert torch.equal(d[POI, IN, CELL].edge_index[1], d[POI].cell)
        # the local cell of each POI is the global cell of the global POI
        glob = tiny_graph.data[POI].cell[sub.poi_index]
        torch.testing.assert_close(d[CELL].pos[d[POI].cell], tiny_graph.data[CELL].pos[glob])


def border_world() -> World:
    """Lake Tahoe: two CA POIs, a NV POI ~10 km east, a NV POI in Reno ~60 km away, one in TX."""
    rows = [
        ("ca0", None, "722515", 39.00, -120.05, "CA", 1.0),
        ("ca1", None, "722515", 39.01, -120.06, "CA", 2.0),
        ("nv0", None, "722515", 39.00, -119.93, "NV", 3.0),
        ("nv1", None, "722515", 39.53, -119.81, "NV", 4.0),
        ("tx0", None, "722515", 29.76, -95.37, "TX", 5.0),
    ]
    cov = [("ca0", "ca1", 3), ("ca0", "nv0", 2), ("nv0", "nv1", 1)]
    return World(pois=poi_frame(rows), covisits=covisit_frame(cov))


@pytest.mark.parametrize(("halo", "want"), [(0.0, []), (5.0, []), (15.0, ["nv0"]), (100.0, ["nv0", "nv1"])])
def test_halo_adds_nearby_other_state_pois_as_non_core(halo, want):
    g = build_graph(border_world(), GraphConfig(near_k=2, near_radius_km=200))
    sub = StatePartitioner(g, halo_km=halo).subgraph("CA")
    ids = [g.index["poi_ids"][i] for i in sub.poi_index.tolist()]
    assert ids == ["ca0", "ca1", *want]
    assert sub.core_mask.tolist() == [True, True] + [False] * len(want)
    assert_induced(g, sub, global_nodes(g, sub.poi_index))
    # the cross-border co-visit joins with its halo end; with both NV POIs, so does nv0-nv1
    want_vis = {0.0: [3], 5.0: [3], 15.0: [3, 2], 100.0: [3, 2, 1]}[halo]
    assert sub.data[POI, COVISITS, POI].visitors.tolist() == want_vis


def test_subgraph_of_several_states_with_extra_pois():
    g = build_graph(border_world(), GraphConfig(near_k=2, near_radius_km=200))
    part = StatePartitioner(g)
    sub = part.subgraph(["NV", "CA"], extra_pois=torch.tensor([4]))
    assert sub.state == "NV+CA"
    assert sub.poi_index.tolist() == [0, 1, 2, 3, 4]
    assert sub.core_mask.tolist() == [True, True, True, True, False]  # tx0 is context only
    assert sub.to_local(torch.tensor([4, 0]), torch.tensor([2, 1])).tolist() == [[4, 0], [2, 1]]
    assert_induced(g, sub, global_nodes(g, sub.poi_index))
    only_tx = part.subgraph("TX")
    with pytest.raises(ValueError, match="outside the subgraph of state TX"):
        only_tx.to_local(torch.tensor([0]), torch.tensor([4]))


def test_group_states_packing():
    g = build_graph(border_world(), GraphConfig(near_k=0))
    part = StatePartitioner(g)
    # largest first, first group with room; a state heavier than the cap stays alone
    assert part.group_states({"CA": 5, "NV": 3, "TX": 2}, max_weight=5) == [["CA"], ["NV", "TX"]]
    assert part.group_states({"CA": 5, "NV": 3, "TX": 2}, max_weight=10) == [["CA", "NV", "TX"]]
    assert part.group_states({"CA": 9, "NV": 3, "TX": 2}, max_weight=4) == [["CA"], ["NV"], ["TX"]]
    # equal weights: by name
    assert part.group_states({"CA": 1, "NV": 1, "TX": 1}, max_weight=2) == [["CA", "NV"], ["TX"]]
    assert part.group_states({}, max_weight=0) == [["CA", "NV", "TX"]]  # weightless states pack together
    groups = part.group_states({"CA": 2, "NV": 2, "TX": 1}, 3)
    assert sorted(sum(groups, [])) == ["CA", "NV", "TX"]  # every state exactly once


def test_partitioner_errors():
    g = build_graph(border_world(), GraphConfig(near_k=0))
    with pytest.raises(ValueError, match="halo_km"):
        StatePartitioner(g, halo_km=-1)
    with pytest.raises(DataValidationError, match="unknown state 'WA'"):
        StatePartitioner(g).subgraph("WA")
