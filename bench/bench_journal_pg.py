"""PostgreSQL journal benchmark: accepts/s and latency, one node vs two nodes on one database.

Run on purpose (not part of the test suite)::

    python bench/bench_journal_pg.py [--requests 3000] [--runs 3] [--concurrency 1,16,128]
                                     [--nodes 1,2] [--operators 1000] [--pool 20]

The same as ``python bench/bench_journal.py --backend postgres``: the
measuring loop and the options (described there) are shared.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

# bench_journal sits next to this file; ``python bench/bench_journal_pg.py`` puts this
# folder first on sys.path, an import from elsewhere may not.
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_journal


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    return bench_journal.main(["--backend", "postgres", *args])


if __name__ == "__main__":
    sys.exit(main())
