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
