"""Moved to hdi_core.checks (one module per checkpoint); this name stays for existing imports."""

from hdi_core.checks import *  # noqa: F403
from hdi_core.checks import __all__  # noqa: F401
from hdi_core.checks.common import _iso, _plain  # noqa: F401
