"""One process of a distributed ``inviz`` run in the tests (tests/test_distributed.py), not a test module.

``torchrun --standalone --nproc_per_node 2 tests/distributed_worker.py --delay-rank0 8 extract ...``
runs ``inviz extract ...`` in every process; global rank 0 (``RANK`` from torchrun, else
``NODE_RANK``) starts ``--delay-rank0`` seconds late, the situation that used to race and hang.
"""

from __future__ import annotations

import os
import sys
import time


def main(argv: list[str]) -> int:
    """Sleep on global rank 0 when asked, then run the ``inviz`` command line; return its exit status."""
    delay = 0.0
    if argv[:1] == ["--delay-rank0"]:
        delay, argv = float(argv[1]), argv[2:]
    if os.environ.get("RANK", os.environ.get("NODE_RANK", "0")) == "0":
        time.sleep(delay)
    from inviz.cli import main as inviz_main

    return inviz_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
