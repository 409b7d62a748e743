"""A tiny co-visitation config file shared by the CLI tests."""

from pathlib import Path

import yaml


def tiny_covisit_yaml(tmp_path: Path, tracking: dict) -> Path:
    """``tmp_path/tiny.yaml``: a 150-POI, 3-epoch GNN; ``tracking`` is its tracking section."""
    cfg = {
        "name": "tiny_sage",
        "data": {"n_pois": 150, "cache_dir": None},
        "model": {"hidden": 16, "head_hidden": [16], "dropout": 0.0},
        "train": {"epochs": 3, "checkpoint_dir": str(tmp_path / "ckpt")},
        "tracking": tracking,
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path
