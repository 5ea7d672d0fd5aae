"""Pricing before fetching: `metadata.get_cost` over the chunks not cached, refused over the budget."""

from __future__ import annotations

from collections.abc import Callable

import databento as db

from hdi_core.errors import BudgetExceededError
from hdi_resources.databento.chunks import ChunkRequest, consecutive_runs, iso

# Runs one priced call with retries and error translation: (call, what) -> its result.
Caller = Callable[[Callable[[], float], str], float]


def usd(amount: float) -> str:
    """Dollars with cents, or with enough digits that a tiny nonzero amount does not read as $0.00."""
    return f"${amount:,.2f}" if amount == 0 or abs(amount) >= 0.01 else f"${amount:.6f}"


def price(client: db.Historical, uncached: list[ChunkRequest], call: Caller) -> float:
    """USD of fetching `uncached`: one metadata.get_cost per run of consecutive chunks."""
    total = 0.0
    for span in consecutive_runs(uncached):

        def ask(span: ChunkRequest = span) -> float:
            return float(client.metadata.get_cost(
                dataset=span.dataset, start=iso(span.start_ns), end=iso(span.end_ns),
                symbols=list(span.symbols), schema=span.schema, stype_in=span.stype_in, limit=span.limit,
            ))

        total += call(ask, f"get_cost {span.label()}")
    return total


def check_budget(cost: float, budget_usd: float, request: ChunkRequest) -> None:
    """BudgetExceededError when `cost` is over the budget: nothing has been fetched at that point."""
    if cost > budget_usd:
        raise BudgetExceededError(
            f"request {request.label()} would cost {usd(cost)}, over the budget of {usd(budget_usd)}; "
            f"nothing was fetched"
        )
