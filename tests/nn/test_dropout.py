"""geograph's CPU dropout: F.dropout's distribution, scale, gradient and seeding."""

from __future__ import annotations

import pytest
import torch

from geograph.nn.dropout import Dropout, dropout, keep_mask


def test_drop_rate_and_scale_match_p():
    torch.manual_seed(0)
    keep, scale = keep_mask(torch.Size([1000, 1000]), 0.1)
    assert keep.dtype == torch.bool and keep.shape == (1000, 1000)
    assert abs((1 - keep.float().mean().item()) - 0.1) < 0.002
    assert scale == pytest.approx(1 / (1 - round(0.1 * 65536) / 65536))
    # no structure across the four 16-bit slices of one draw
    for j in range(4):
        assert abs(1 - keep.view(-1)[j::4].float().mean().item() - 0.1) < 0.003


def test_odd_sizes_and_expectation():
    torch.manual_seed(1)
    x = torch.ones(7, 3)
    y = dropout(x, 0.5)
    assert y.shape == x.shape and set(y.unique().tolist()) <= {0.0, 2.0}
    big = dropout(torch.ones(400_000), 0.3)
    assert big.mean().item() == pytest.approx(1.0, abs=0.01)


def test_gradient_is_the_mask_times_the_scale():
    torch.manual_seed(2)
    x = torch.randn(50, 8, requires_grad=True)
    y = dropout(x, 0.2)
    g = torch.randn(50, 8)
    y.backward(g)
    kept = y != 0
    scale = 65536 / (65536 - round(0.2 * 65536))
    torch.testing.assert_close(y[kept], x.detach()[kept] * scale)
    torch.testing.assert_close(x.grad, torch.where(kept, g * scale, torch.zeros_like(g)))


def test_same_seed_same_mask_and_eval_is_identity():
    x = torch.randn(100, 16)
    torch.manual_seed(3)
    a = dropout(x, 0.1)
    torch.manual_seed(3)
    b = dropout(x, 0.1)
    assert torch.equal(a, b)
    m = Dropout(0.1).eval()
    assert m(x) is x
    assert dropout(x, 0.0) is x


def test_bad_probability_is_refused():
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(1.0)


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_relu_keep_times_its_scale_is_relu_then_dropout(p):
    from geograph.nn.dropout import relu_dropout_scale, relu_keep

    z = torch.randn(300, 17)
    scale = relu_dropout_scale(p, True, z.device)
    assert scale == pytest.approx(65536 / (65536 - round(p * 65536)))
    za, zb = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    torch.manual_seed(4)
    want = dropout(torch.relu(za), p)
    torch.manual_seed(4)
    got = relu_keep(zb, p) * scale  # the same mask: drawn from the same generator state
    torch.testing.assert_close(got, want)
    assert (got == 0).float().mean().item() > 0.5  # ReLU's half and the dropped elements
    g = torch.randn(300, 17)
    want.backward(g)
    got.backward(g)
    torch.testing.assert_close(zb.grad, za.grad)


def test_relu_dropout_scale_is_none_where_the_cpu_mask_does_not_apply():
    from geograph.nn.dropout import relu_dropout_scale

    cpu = torch.device("cpu")
    assert relu_dropout_scale(0.1, False, cpu) is None  # evaluation
    assert relu_dropout_scale(0.0, True, cpu) is None
    assert relu_dropout_scale(0.1, True, torch.device("cuda")) is None  # F.dropout there
    assert relu_dropout_scale(1.0 - 1e-6, True, cpu) is None
