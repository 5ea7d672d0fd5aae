"""Book tapes: actions and sides from DBN bytes or Arrow text, bad bytes named, the sample files' columns."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from repo_paths import DBN_SAMPLES

from hdi_core.dbn.decode import decode_file
from hdi_core.errors import HdiError
from hdi_core.orderflow.book import F_LAST, action_bytes, order_events, top_of_book

SAMPLE_MBO = DBN_SAMPLES / "dbn" / "test_data.mbo.dbn"  # uncompressed, DBN v1/v2 layout upgraded on decode
SAMPLE_MBP10 = DBN_SAMPLES / "dbn" / "test_data.mbp-10.dbn"


def test_action_bytes() -> None:
    assert action_bytes(pa.array(["T", "F", "A", "C", "M", "R", "N"])).tolist() == [ord(c) for c in "TFACMRN"]
    assert action_bytes(np.array([b"C"], "S1")).tolist() == [ord("C")]
    with pytest.raises(HdiError, match="row 1: action byte 88"):
        action_bytes(np.array([b"T", b"X"], "S1"))


def test_sample_columns() -> None:
    mbo = order_events(decode_file(SAMPLE_MBO).records_of())
    assert mbo.ts.dtype == np.int64 and mbo.order_id.dtype == np.int64
    assert mbo.price.tolist() == [3_722_750_000_000, 3_723_000_000_000] and mbo.size.tolist() == [1, 1]
    book = top_of_book(decode_file(SAMPLE_MBP10).records_of())
    assert bool((book.flags & F_LAST).all())
    assert [chr(s) for s in book.side] == ["A", "B"]
    assert (book.bid_px < book.ask_px).all()
    with pytest.raises(HdiError, match="no field 'bid_px_00'"):
        top_of_book(decode_file(SAMPLE_MBO).records_of())
