"""The errors every read path shares; `status` is what the HTTP API answers, the CLI exits non-zero."""

from __future__ import annotations

from hdi_core.errors import HdiError


class ReadError(HdiError):
    """A read that cannot be answered as asked; the message is one line for the user."""

    status = 400


class BadRequest(ReadError):
    """A malformed or contradictory parameter (a date that is not one, an end before the start)."""

    status = 400


class NotFound(ReadError):
    """An unknown symbol or schema, or nothing stored where the request looks."""

    status = 404


class TooLarge(ReadError):
    """An unbounded read over the row guard: the caller must narrow it, page it or ask for all."""

    status = 413


class DatabaseUnavailable(ReadError):
    """The database is not reachable now (stopped, restarting) or went away during the read."""

    status = 503
