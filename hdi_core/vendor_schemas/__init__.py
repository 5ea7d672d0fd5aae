"""hdi_core/vendor_schemas."""
