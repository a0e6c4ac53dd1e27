"""Run by test_persistence's kill -9 test: many decisions, one line after each commit."""

from __future__ import annotations

import sys

import numpy as np

from review import Reason, ReviewSession, SparseMask
from store import Library


def main() -> None:
    library = Library.open(sys.argv[1])
    session = ReviewSession.open(library, int(sys.argv[2]), reviewer="killer")
    keys = ["m1", "m2", "m3"]
    step = 0
    while True:  # until killed
        key = keys[step % 3]
        if step % 4 == 0:
            session.accept([key])
        elif step % 4 == 1:
            session.reject([key], Reason.ARTEFACT, f"step {step}")
        elif step % 4 == 2:
            session.paint(key, SparseMask((step % 12, 0, step % 20),
                                          np.ones((1, 1, 1), dtype=bool)), erase=False)
        else:
            key = keys[(step - 1) % 3]  # the undo takes back the previous step's stroke
            session.undo()
        f = session.get(key)
        print(f"committed {step} {key} {f.status.value} {f.measures.voxel_count} "
              f"{f.reason_text}", flush=True)
        step += 1


if __name__ == "__main__":
    main()
