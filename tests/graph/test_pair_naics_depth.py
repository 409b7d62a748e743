"""pair_features' NAICS depth: shared leading digits, never counting a short code's padding."""

from types import SimpleNamespace

import torch

from geograph.graph.pairs import pair_features


def test_padding_of_a_short_code_is_not_a_shared_digit() -> None:
    store = SimpleNamespace(
        pos=torch.tensor([[40.0, -75.0], [40.1, -75.1], [40.2, -75.2], [40.3, -75.3]]),
        brand=torch.tensor([-1, -1, -1, -1]),
        # 3118 stored padded (311800) twice, a 6-digit child of it, and a 6-digit code of another sector
        naics_code=torch.tensor([311800, 311800, 311811, 722515]),
    )
    depth = pair_features(store, torch.tensor([0, 0, 2, 0]), torch.tensor([1, 2, 2, 3]))[:, 2]
    assert depth.tolist() == [4.0, 4.0, 6.0, 0.0]
