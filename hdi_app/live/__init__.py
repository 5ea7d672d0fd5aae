"""`hdi live capture`: the long-running live capture service (service.py), its health (health.py: status file,
pid file, Prometheus metrics on its own 127.0.0.1 port) and what `hdi live status` reads."""
