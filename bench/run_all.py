"""`make bench`: every benchmark script in turn, each in its own process under a scratch HDI_HOME.

Figures are printed, never asserted: speed goals are tracked here, not in the test suite.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["bench_synthetic.py", "bench_fetch.py", "bench_continuous.py", "bench_load.py", "bench_lake.py",
           "bench_orderflow.py", "bench_live_orderflow.py", "bench_live_gateway.py", "bench_live.py"]
EXTRA = [name for name in sorted(p.name for p in HERE.glob("bench_*.py")) if name not in SCRIPTS]


def main() -> int:
    failed = []
    for name in [*SCRIPTS, *EXTRA]:
        print(f"\n===== {name} =====", flush=True)
        with tempfile.TemporaryDirectory(prefix="hdi-bench-") as home:
            done = subprocess.run([sys.executable, str(HERE / name)], env={**os.environ, "HDI_HOME": home})
        if done.returncode:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
