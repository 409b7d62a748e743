"""The contrastive retrieval head: loss, queue, caching, and that training helps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geograph.metrics.geo import geo_metrics
from geograph.nn.location import GeoCLIPLocationEncoder, SinusoidalLocationEncoder
from geograph.retrieval import Gallery, GeoPredictor, RetrievalHead


def test_repr_shapes_and_loss():
    head = RetrievalHead(
        16, SinusoidalLocationEncoder(num_frequencies=4, hidden=32, out_dim=8), hidden=32, queue_size=8
    )
    assert str(head) == (
        "RetrievalHead(query_dim=16, hidden=32, encoder=SinusoidalLocationEncoder(num_frequencies=4, "
        "freqs=1..512, out_dim=8), queue_size=8)"
    )
    assert float(head.scale.detach()) == pytest.approx(1 / 0.07)
    q = head.encode_queries(torch.randn(5, 16))
    assert q.shape == (5, 8) and torch.allclose(q.norm(dim=1), torch.ones(5))
    loss = head.loss(torch.randn(5, 16), torch.rand(5, 2) * 50)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert head.logit_scale.grad is not None


def test_queue_is_a_ring_buffer():
    head = RetrievalHead(4, SinusoidalLocationEncoder(hidden=0), hidden=0, queue_size=5)
    head.enqueue(torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]))
    assert int(head.queue_count) == 3 and int(head.queue_ptr) == 3
    head.enqueue(torch.tensor([[4.0, 4.0], [5.0, 5.0], [6.0, 6.0]]))
    assert int(head.queue_count) == 5 and int(head.queue_ptr) == 1
    assert head.gps_queue[:, 0].tolist() == [6.0, 2.0, 3.0, 4.0, 5.0]
    head.enqueue(torch.arange(14.0).reshape(7, 2))  # longer than the queue: keep the last 5
    assert sorted(head.gps_queue[:, 0].tolist()) == [4.0, 6.0, 8.0, 10.0, 12.0]
    # the batch is compared with the queue *before* it is enqueued (never with itself twice)
    head.reset_parameters()
    assert int(head.queue_count) == 0
    head.loss(torch.randn(2, 4), torch.tensor([[1.0, 1.0], [2.0, 2.0]]))
    assert int(head.queue_count) == 2
    with pytest.raises(ValueError, match="queue_size"):
        RetrievalHead(4, SinusoidalLocationEncoder(hidden=0), queue_size=-1)


def test_cached_locations_match_encoding():
    enc = GeoCLIPLocationEncoder(out_dim=8, hidden=16, num_features=8)
    head = RetrievalHead(4, enc, hidden=0)
    ll = torch.tensor([[10.0, 20.0], [-30.0, 40.0], [50.0, -60.0]])
    with pytest.raises(RuntimeError, match="frozen"):
        head.cache_locations(ll)
    enc.freeze_trunk()
    head.cache_locations(ll)  # trunk features; the heads still train
    idx = torch.tensor([2, 0])
    assert torch.allclose(head.encode_locations(ll[idx], idx), head.encode_locations(ll[idx]), atol=1e-6)
    enc.freeze()
    head.cache_locations(ll)  # final embeddings
    assert torch.allclose(head.encode_locations(ll[idx], idx), head.encode_locations(ll[idx]), atol=1e-6)


def _toy(n: int, seed: int):
    """Queries that encode their region (one of 24 centres) plus noise; coordinates near the centre."""
    law = np.random.default_rng(42)  # the same regions and "camera" for every split
    centres = np.stack([law.uniform(-60, 60, 24), law.uniform(-180, 180, 24)], 1)
    w = law.normal(0, 1, (24, 16))
    g = np.random.default_rng(seed)
    c = g.integers(0, 24, n)
    ll = centres[c] + g.normal(0, 0.3, (n, 2))
    q = w[c] + g.normal(0, 0.8, (n, 16))
    return q.astype(np.float32), ll


def test_trained_head_improves_over_its_first_epoch():
    torch.manual_seed(0)
    q_tr, ll_tr = _toy(400, 0)
    q_te, ll_te = _toy(100, 1)
    head = RetrievalHead(
        16,
        SinusoidalLocationEncoder(num_frequencies=6, max_freq=16.0, hidden=64, out_dim=32),
        hidden=64,
        queue_size=64,
    )
    opt = torch.optim.AdamW(head.parameters(), lr=3e-3)
    q_t, ll_t = torch.as_tensor(q_tr), torch.as_tensor(ll_tr, dtype=torch.float32)
    gallery = Gallery(ll_tr, name="train")
    history = []
    for epoch in range(4):
        head.train()
        perm = torch.randperm(400, generator=torch.Generator().manual_seed(epoch))
        total = 0.0
        for s in range(0, 400, 50):
            b = perm[s : s + 50]
            loss = head.loss(q_t[b], ll_t[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(b)
        gallery.embed(head.location_encoder)
        acc = geo_metrics(GeoPredictor(head, gallery, top_k=1).predict(q_te).latlon, ll_te)["acc_200km"]
        history.append((total / 400, acc))
    (loss1, acc1), (loss_end, acc_end) = history[0], history[-1]
    assert loss_end < loss1 - 0.3
    assert acc_end > acc1 + 0.1 and acc_end > 0.7
