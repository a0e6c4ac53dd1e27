"""PyInstaller entry point of the frozen ``lucida`` (the same as the venv's console script).

A frozen build is also what multiprocessing starts for its helpers: each spawned inference
worker and the resource tracker. ``freeze_support()`` runs such a helper and exits, so it
comes first, before any of Lucida is imported and outside ``app.cli.main``'s stdout
handling (a helper's stdout may be closed when it exits).
"""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from app.cli import main

    sys.exit(main())
