"""Order flow domain: delta, footprint and volume profile from the adjusted continuous ticks; absorption zones
and iceberg candidates from the front contract's book; their database loads."""
