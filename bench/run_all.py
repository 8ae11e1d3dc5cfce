"""`make bench`: run every benchmark in turn and write its figures into docs/benchmarks.md.

Each script is also runnable on its own (see its docstring for options). Together they
take a while (the archive run moves several GB over loopback): pass script names to run
only some, e.g. `python bench/run_all.py sync dashboard`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Script, and the flag that makes it write its section of docs/benchmarks.md.
BENCHES = {
    "sync": ["bench_sync.py", "--write-docs"],
    "dashboard": ["bench_dashboard.py", "--write-docs"],
    "load": ["bench_load.py", "--write-docs"],
    "archive": ["bench_archive.py"],  # prints its figures; its section is edited by hand
    "insights": ["bench_insights.py", "--write-docs"],
    "export": ["bench_export.py", "--write-docs"],
}


def main(names: list[str]) -> int:
    unknown = [name for name in names if name not in BENCHES]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHES)}")
        return 2
    failed = []
    for name in names or list(BENCHES):
        script, *args = BENCHES[name]
        print(f"== {name}: {script} {' '.join(args)}", flush=True)
        if subprocess.run([sys.executable, str(HERE / script), *args], cwd=HERE.parent).returncode:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
