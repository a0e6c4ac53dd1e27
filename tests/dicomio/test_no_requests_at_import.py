"""Loading DICOM does not import ``requests`` (pydicom's test-file downloader pulls it in at
import time, 0.1-0.2 s of Lucida's start-up: dicomio/__init__.py hides it while pydicom
loads), and ``requests`` still imports afterwards for DICOMweb."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def _fresh_python(code: str) -> Any:
    """The JSON a new interpreter prints last after running ``code``."""
    out = subprocess.run([sys.executable, "-c", "import json, sys\n" + code],
                         capture_output=True, text=True, check=True, cwd=REPO).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_the_loader_leaves_requests_unimported_and_importable() -> None:
    result = _fresh_python(
        "import dicomio.group, dicomio.load, dicomio.scan\n"
        "import pydicom.data.download as download\n"
        "before = 'requests' in sys.modules\n"
        "import requests\n"
        "import net.web\n"
        "print(json.dumps({'before': before, 'downloader_uses_requests': "
        "download.HAVE_REQUESTS, 'after': 'requests' in sys.modules}))\n")
    assert result == {"before": False, "downloader_uses_requests": False, "after": True}


def test_requests_already_imported_is_left_alone() -> None:
    assert _fresh_python("import requests\n"
                         "import dicomio.load\n"
                         "import pydicom.data.download as download\n"
                         "print(json.dumps(download.HAVE_REQUESTS))\n") is True
