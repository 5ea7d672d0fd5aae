"""The live domain: after a trading session, history and live capture must agree; then history replaces live."""
