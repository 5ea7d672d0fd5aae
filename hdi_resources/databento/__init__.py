"""Databento access for HDI, in small pieces (read `resource.py` first):

- `resource`: `DatabentoResource`, the Dagster resource every fetch goes through.
- `chunks`: `ChunkRequest` (the unit priced, fetched and cached), `split_chunks`, `FetchResult`.
- `client`: the `databento.Historical` client, gateway URL, API key from the environment, error messages.
- `cache`: the on-disk chunk cache (atomic writes, damaged files dropped).
- `budget`: pricing with `metadata.get_cost` before fetching; `BudgetExceededError` over the budget.
- `tls`: the CA bundle that lets the client trust a local gateway.

DBN bytes are decoded by HDI's codec, `hdi_core.dbn`.
"""

from hdi_core.dbn import MappingInterval, merge_mappings, records_to_table
from hdi_core.errors import BudgetExceededError
from hdi_resources.databento.chunks import ChunkRequest, FetchResult, split_chunks
from hdi_resources.databento.client import HOW_TO_START_GATEWAY
from hdi_resources.databento.resource import DatabentoResource
from hdi_resources.databento.tls import combined_ca_bundle

__all__ = [
    "HOW_TO_START_GATEWAY", "BudgetExceededError", "ChunkRequest", "DatabentoResource", "FetchResult",
    "MappingInterval", "combined_ca_bundle", "merge_mappings", "records_to_table", "split_chunks",
]
