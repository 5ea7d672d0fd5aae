"""Errors meant for users: one line that names the file, field, record or setting at fault."""

from __future__ import annotations


class HdiError(Exception):
    """A failure the user can act on; the CLI prints its message alone, without a stack trace."""


class ConfigError(HdiError):
    """A configuration file or setting is invalid."""


class BudgetExceededError(HdiError):
    """A Databento request would cost more than the configured budget; nothing was fetched."""


class GatewayNotConfiguredError(HdiError):
    """Neither an API key nor a local gateway is configured."""


class LoadBusyError(HdiError):
    """A load waited too long for a lock held by another load or a reader and gave up; it changed nothing,
    so running it again is safe (the Dagster load assets retry it)."""

    retryable = True
