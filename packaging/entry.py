"""PyInstaller entry point of the frozen ``lucida`` (the same as the venv's console script).

``app.cli.main`` calls ``multiprocessing.freeze_support()`` first, so a spawned inference
worker runs the worker, not a second GUI.
"""

import sys

from app.cli import main

if __name__ == "__main__":
    sys.exit(main())
