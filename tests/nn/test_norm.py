"""geograph.nn.norm.LayerNorm: torch's LayerNorm values and parameters, thread-independent gradients."""

import torch
from torch import nn

from geograph.nn.norm import LayerNorm


def _grads(layer: nn.Module, x: torch.Tensor, g: torch.Tensor, threads: int) -> list[torch.Tensor]:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        xi = x.clone().requires_grad_(True)
        layer.zero_grad(set_to_none=True)
        layer(xi).backward(g)
        return [xi.grad.clone(), layer.weight.grad.clone(), layer.bias.grad.clone()]
    finally:
        torch.set_num_threads(before)


def test_matches_torch_layer_norm_and_loads_its_state() -> None:
    torch.manual_seed(0)
    ref = nn.LayerNorm(16)
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5)
        ref.bias.uniform_(-1, 1)
    ours = LayerNorm(16)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(32, 16)
    torch.testing.assert_close(ours(x), ref(x))
    assert str(ours) == "LayerNorm((16,), eps=1e-05, elementwise_affine=True, bias=True)"
    assert ours(x).shape == (32, 16)


def test_gradients_do_not_depend_on_the_thread_count() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(20_000, 64, generator=gen)
    g = torch.randn(20_000, 64, generator=gen)
    layer = LayerNorm(64)
    one = _grads(layer, x, g, 1)
    for threads in (2, 3):
        for a, b in zip(one, _grads(layer, x, g, threads), strict=True):
            assert torch.equal(a, b)


def test_scale_is_folded_into_the_affine_part() -> None:
    torch.manual_seed(2)
    layer = LayerNorm(8)
    with torch.no_grad():
        layer.weight.uniform_(0.5, 1.5)
        layer.bias.uniform_(-1, 1)
    x = torch.randn(40, 8)
    torch.testing.assert_close(layer(x, 1.25), layer(x) * 1.25)
    bare = LayerNorm(8, elementwise_affine=False)
    torch.testing.assert_close(bare(x, 2.0), bare(x) * 2.0)
    no_bias = LayerNorm(8, bias=False)
    torch.testing.assert_close(no_bias(x, 2.0), no_bias(x) * 2.0)


def test_scaled_gradients_do_not_depend_on_the_thread_count() -> None:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(20_000, 64, generator=gen)
    g = torch.randn(20_000, 64, generator=gen)
    layer = LayerNorm(64)

    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = layer
            self.weight, self.bias = layer.weight, layer.bias

        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return self.norm(t, 1.1)

    one = _grads(Scaled(), x, g, 1)
    for a, b in zip(one, _grads(Scaled(), x, g, 2), strict=True):
        assert torch.equal(a, b)
