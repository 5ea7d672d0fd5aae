"""The DBN codec: Databento's binary format <-> NumPy records <-> Arrow tables, the one implementation in HDI.

- `schemas`: record layouts (NumPy dtypes) per schema and DBN version, magic bytes, record types.
- `decode`: plain or zstd DBN v1..v3 -> `DecodedDbn` (metadata, records, typed symbol mappings).
- `arrow`: records -> Arrow table, with the one text policy (UTF-8, invalid bytes replaced by U+FFFD).
- `mappings`: `MappingInterval`, the symbol-mapping type, and merging them across chunks.
- `encode`: NumPy records -> a DBN v3 stream (plain or zstd), what the gateway serves.

Needs only `databento_dbn`, NumPy, PyArrow and zstandard: never the network client.
"""

from hdi_core.dbn.arrow import records_to_table, text_column
from hdi_core.dbn.decode import (
    DbnError,
    DecodedDbn,
    TruncatedDbnError,
    decode_bytes,
    decode_dbn,
    decode_file,
    decode_response,
    decompress,
    read_dbn_bytes,
)
from hdi_core.dbn.encode import (
    ZSTD_CHUNK,
    ZSTD_LEVEL,
    ZSTD_THREADS,
    encode_stream,
    iter_stream,
    metadata_bytes,
    zstd_compress,
)
from hdi_core.dbn.mappings import (
    MappingInterval,
    Mappings,
    SymbolMapping,
    as_date,
    mapping_objects,
    mappings_from,
    merge_mappings,
)
from hdi_core.dbn.schemas import (
    DBN_MAGIC,
    DBN_VERSIONS,
    RTYPE_SCHEMA,
    SCHEMA_DTYPES,
    TIME_FIELDS,
    VERSION_DTYPES,
    ZSTD_MAGIC,
    empty_records,
    schema_dtype,
    time_field,
)

__all__ = [
    "DBN_MAGIC", "DBN_VERSIONS", "RTYPE_SCHEMA", "SCHEMA_DTYPES", "TIME_FIELDS", "VERSION_DTYPES", "ZSTD_CHUNK",
    "ZSTD_LEVEL", "ZSTD_MAGIC", "ZSTD_THREADS", "DbnError", "DecodedDbn", "MappingInterval", "Mappings",
    "SymbolMapping", "TruncatedDbnError", "as_date", "decode_bytes", "decode_dbn", "decode_file",
    "decode_response", "decompress", "empty_records", "encode_stream", "iter_stream", "mapping_objects",
    "mappings_from", "merge_mappings", "metadata_bytes", "read_dbn_bytes", "records_to_table", "schema_dtype",
    "text_column", "time_field", "zstd_compress",
]
