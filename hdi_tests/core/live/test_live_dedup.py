"""Gap fill: a replay from the last ts_recv held drops exactly what is held, identical records counted."""

from __future__ import annotations

import databento_dbn as dbn
import numpy as np

from hdi_core.dbn.schemas import SCHEMA_DTYPES
from hdi_core.live.dedup import GapFilter


def _records(rows: list[tuple[int, int, int]]) -> np.ndarray:
    """(ts_recv, order_id, sequence) MBO records; the same sequence for several records, as in one packet."""
    out = np.zeros(len(rows), SCHEMA_DTYPES["mbo"])
    for i, (recv, order, seq) in enumerate(rows):
        out[i] = np.frombuffer(bytes(dbn.MBOMsg(
            publisher_id=1, instrument_id=7, ts_event=recv - 1, order_id=order, price=10**9, size=1, flags=0,
            channel_id=0, action=dbn.Action.ADD, side=dbn.Side.BID, ts_recv=recv, ts_in_delta=0, sequence=seq)),
            SCHEMA_DTYPES["mbo"])[0]
    return out


def test_replay_after_a_cut_mid_instant_gives_every_record_once() -> None:
    stream = _records([(10, 1, 1), (11, 2, 2), (11, 3, 2), (11, 3, 2), (12, 4, 3), (13, 5, 4)])
    gap = GapFilter()
    held = [stream[:3][gap.admit("mbo", stream[:3])]]  # cut after the first of three records at ts_recv 11
    assert gap.resume_from() == 11
    gap.reconnected()
    replay = stream[1:]  # the gateway replays from ts_recv 11
    held += [replay[:2][gap.admit("mbo", replay[:2])], replay[2:][gap.admit("mbo", replay[2:])]]
    got = np.concatenate(held)
    assert got.tobytes() == stream.tobytes()  # the second identical record at 11 is kept: a multiset
    assert gap.duplicates_dropped == 2


def test_without_a_reconnect_nothing_is_filtered() -> None:
    gap = GapFilter()
    first = _records([(10, 1, 1)])
    assert gap.admit("mbo", first).all()
    assert gap.admit("mbo", first).all()  # a live stream is taken as it comes
