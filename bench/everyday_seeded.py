"""bench_everyday.py with seeded ids: every ``uuid.uuid4`` comes from ``random.Random(SEED)``.

Call ids are in the prompt (``<tool_result ... id="...">``), so with random ids two runs of the
same code give the 135M model different tokens after a tool result and some answers flip. With
this wrapper two runs see the same ids (when the code makes the same number of ids in the same
order), which is what a before/after comparison of a refactor needs.

    python bench/everyday_seeded.py --split report --systems edgeagent --threads 2 --out F.json
"""

from __future__ import annotations

import random
import runpy
import sys
import uuid
from pathlib import Path

SEED = 1234


def main() -> None:
    rng = random.Random(SEED)
    uuid.uuid4 = lambda: uuid.UUID(int=rng.getrandbits(128), version=4)
    script = Path(__file__).with_name("bench_everyday.py")
    sys.argv = [str(script), *sys.argv[1:]]
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main()
