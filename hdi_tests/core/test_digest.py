"""Content digests: the same rows give the same digest however they are chunked; any value change another."""

from __future__ import annotations

import pyarrow as pa

from hdi_core.digest import table_digest


def test_digest_follows_the_values_not_the_chunking() -> None:
    whole = pa.table({"switch_ns": [1, 2, 3], "roll_gap": [250_000_000, -125_000_000, 0]})
    chunked = pa.concat_tables([whole.slice(0, 1), whole.slice(1)])
    assert table_digest(whole) == table_digest(chunked)
    nudged = whole.set_column(1, "roll_gap", pa.array([250_000_001, -125_000_000, 0]))  # one fixed-point unit
    assert table_digest(nudged) != table_digest(whole)
    assert table_digest(whole.select(["roll_gap", "switch_ns"])) != table_digest(whole)  # the schema counts too
