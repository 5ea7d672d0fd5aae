"""configs/orderflow.yaml: the shipped file equals the model's defaults, overrides merge, typos name the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from repo_paths import REPO_ROOT

from hdi_core.config.orderflow import OrderflowConfig, OrderflowParams, load_orderflow, orderflow_params
from hdi_core.config_files import load_model
from hdi_core.errors import ConfigError


def test_shipped_file_holds_the_documented_defaults() -> None:
    shipped = load_model(REPO_ROOT / "configs" / "orderflow.yaml", OrderflowConfig)
    assert shipped.defaults == OrderflowParams()
    assert shipped.defaults.profile.value_area_share == 0.70
    assert shipped.defaults.footprint.imbalance_ratio == 3.0
    readme = (REPO_ROOT / "configs" / "README.md").read_text()
    assert "orderflow.yaml" in readme


def test_product_override_and_typos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "orderflow.yaml").write_text("products:\n  ES:\n    icebergs: {min_refills: 5}\n")
    monkeypatch.setenv("HDI_CONFIG_DIR", str(tmp_path))
    assert orderflow_params("ES").icebergs.min_refills == 5
    assert orderflow_params("NQ").icebergs.min_refills == 3
    typo = tmp_path / "typo"
    typo.mkdir()
    monkeypatch.setenv("HDI_CONFIG_DIR", str(typo))
    (typo / "orderflow.yaml").write_text("products:\n  ES:\n    icebergs: {min_refill: 5}\n")
    with pytest.raises(ConfigError, match=r"products\.ES\.icebergs\.min_refill"):
        load_orderflow()
    (typo / "orderflow.yaml").write_text("defaults:\n  profile: {value_area_share: 1.5}\n")
    with pytest.raises(ConfigError, match=r"orderflow.yaml: defaults\.profile\.value_area_share"):
        load_orderflow()
