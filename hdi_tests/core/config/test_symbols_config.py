"""configs/symbols.yaml through its model: the five seed products, and typos refused in one line naming
the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hdi_core.config import symbols as symbols_config
from hdi_core.config_files import REPO_ROOT
from hdi_core.errors import HdiError

SEED = {  # symbol: (calendar, tick in 1e-9 fixed point, months) from the CME contract specs
    "ES": ("CME Globex Equity", 250_000_000, "HMUZ"),
    "NQ": ("CME Globex Equity", 250_000_000, "HMUZ"),
    "GC": ("CMEGlobex_GC", 100_000_000, "GJMQVZ"),
    "ZB": ("CBOT_Bond", 31_250_000, "HMUZ"),  # 1/32 of a point, exact
    "ZC": ("CMEGlobex_Grains", 250_000_000, "HKNUZ"),  # 1/4 cent, quoted in cents
}


def _load_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> symbols_config.SymbolsConfig:
    (tmp_path / "symbols.yaml").write_text(text)
    monkeypatch.setenv("HDI_CONFIG_DIR", str(tmp_path))
    return symbols_config.load_symbols()


def _repo_file() -> dict:
    return yaml.safe_load((REPO_ROOT / "configs" / "symbols.yaml").read_text())


def test_the_five_seed_products(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HDI_CONFIG_DIR", raising=False)
    cfg = symbols_config.load_symbols()
    got = {s: (p.calendar, p.tick_size_fixed, p.months) for s, p in cfg.symbols.items()}
    assert got == SEED
    assert cfg.roll_rule in ("c", "v", "n") and cfg.first_window.isoformat() == "2024-01-01"


def test_partitions_list_all_five_and_keep_es_nq(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HDI_CONFIG_DIR", raising=False)
    from hdi_assets.partitions import products, symbols

    assert sorted(symbols.get_partition_keys()) == sorted(SEED)
    assert products()["ZB"].tick_size == 31_250_000 and products()["ZC"].calendar == "CMEGlobex_Grains"
    assert products()["ES"].continuous_symbol == "ES.v.0" and "NQ" in products()


@pytest.mark.parametrize(("edit", "field"), [
    (lambda c: c["symbols"]["ZB"].update(tick_sise=0.03125), "symbols.ZB.tick_sise: Extra inputs"),
    (lambda c: c.update(colour="red"), "colour: Extra inputs"),
    (lambda c: c.update(roll_rule="x"), "roll_rule: Input should be 'c', 'v' or 'n'"),
    (lambda c: c["symbols"]["ES"].update(adjustment="panama"), "symbols.ES.adjustment"),
    (lambda c: c.update(roll_gap_source="close"), "roll_gap_source"),
    (lambda c: c["symbols"]["GC"].update(calendar="CME_GLOBEX"), "symbols.GC.calendar"),
    (lambda c: c["symbols"]["ZC"].update(tick_size=1e-10), "symbols.ZC.tick_size"),
    (lambda c: c["symbols"]["ZC"].update(months="ZH"), "symbols.ZC.months"),
    (lambda c: c.update(first_window="2024-02-01"), "first_window: a window starts on Jan 1 or Jul 1"),
])
def test_bad_file_is_refused_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit, field: str) -> None:
    cfg = _repo_file()
    edit(cfg)
    with pytest.raises(HdiError) as err:
        _load_from(tmp_path, monkeypatch, yaml.safe_dump(cfg))
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{tmp_path / 'symbols.yaml'}: {field}")


def test_config_dir_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _repo_file()
    cfg["symbols"] = {"ES": cfg["symbols"]["ES"]}
    assert list(_load_from(tmp_path, monkeypatch, yaml.safe_dump(cfg)).symbols) == ["ES"]
