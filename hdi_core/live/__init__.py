"""Live capture, pure: raw DBN record bytes -> per-schema NumPy arrays, gap-fill de-duplication, and the
continuous series with its 1-second bars built in stream by the same calendar as history. No IO, no client."""
