"""A real PACS for the network tests: Debian's Orthanc on loopback, and LIDC-IDRI-0001.

Each Orthanc runs from a configuration generated in a temporary folder (its own
storage, free DICOM and HTTP ports, Lucida's AE registered as a modality, the
DICOMweb plugin when installed); it never touches a system Orthanc service.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REQUIRE_SHARED, skip_or_fail

ORTHANC_BIN = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
LUCIDA_AE = "LUCIDA"
LIDC_INSTANCES = 133


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Orthanc:
    """One running Orthanc and the REST calls the tests need."""

    folder: Path
    dicom_port: int
    http_port: int
    lucida_port: int
    aet: str = "ORTHANC"
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = None
    uploaded: list[str] = field(default_factory=list)

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.http_url}/dicom-web"

    def rest(self, method: str, path: str, body: bytes | Any = None,
             timeout: float = 60) -> Any:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.http_url + path, data=data, method=method)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = response.read()
        return json.loads(payload) if payload[:1] in (b"{", b"[") else payload

    def upload(self, paths: Sequence[Path]) -> list[str]:
        """POST /instances for each file; their Orthanc ids."""
        ids = [self.rest("POST", "/instances", Path(p).read_bytes())["ID"] for p in paths]
        self.uploaded.extend(ids)
        return ids

    def instances(self) -> list[str]:
        return list(self.rest("GET", "/instances"))

    def studies(self) -> list[str]:
        return list(self.rest("GET", "/studies"))

    def study_id(self, study_uid: str) -> str:
        found = self.rest("POST", "/tools/lookup", study_uid.encode())
        return str(next(f["ID"] for f in found if f["Type"] == "Study"))

    def register_modality(self, *args: str | int) -> None:
        """Make a modality known: ``(name, aet, host, port)``, or ``(aet, host, port)``
        named after its AE title in lower case."""
        name, aet, host, port = (str(args[0]).lower(), *args) if len(args) == 3 else args
        self.rest("PUT", f"/modalities/{name}",
                  {"AET": aet, "Host": host, "Port": port, "AllowEcho": True,
                   "AllowFind": True, "AllowGet": True, "AllowMove": True,
                   "AllowStore": True})

    def push(self, modality: str, resources: Sequence[str], timeout: float = 120) -> Any:
        """Orthanc sends ``resources`` to ``modality`` by C-STORE (REST /modalities/../store)."""
        return self.rest("POST", f"/modalities/{modality}/store",
                         {"Resources": list(resources), "Synchronous": True}, timeout)

    def alive(self) -> bool:
        try:
            self.rest("GET", "/system", timeout=2)
        except (OSError, urllib.error.URLError):
            return False
        return True

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def launch_orthanc(folder: Path, *, config: dict[str, Any] | None = None) -> Orthanc:
    """Start an Orthanc whose everything lives in ``folder``; wait until its REST answers."""
    if not Path(ORTHANC_BIN).exists():
        skip_or_fail("Orthanc is not installed (Debian package `orthanc`, see "
                     "packaging/system-deps.sh)", REQUIRE_SHARED)
    folder.mkdir(parents=True, exist_ok=True)
    peer = Orthanc(folder, free_port(), free_port(), free_port())
    settings: dict[str, Any] = {
        "Name": "LucidaTestPACS",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"),
        "HttpPort": peer.http_port,
        "DicomPort": peer.dicom_port,
        "DicomAet": peer.aet,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "OrthancExplorerEnabled": False,
        "WebDavEnabled": False,
        "SaveJobs": False,
        "DicomScuTimeout": 10,
        "DicomCheckModalityHost": False,
        "DicomAlwaysAllowEcho": True,
        "DicomAlwaysAllowStore": True,
        "Plugins": [str(DICOMWEB_PLUGIN)] if DICOMWEB_PLUGIN.exists() else [],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "DicomModalities": {"lucida": [LUCIDA_AE, "127.0.0.1", peer.lucida_port]},
    } | (config or {})
    (folder / "orthanc.json").write_text(json.dumps(settings, indent=1))
    with open(folder / "orthanc.log", "wb") as log:  # the child keeps its own descriptor
        peer.process = subprocess.Popen([ORTHANC_BIN, str(folder / "orthanc.json")],
                                        stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    deadline = time.monotonic() + 30
    while not peer.alive():
        if peer.process.poll() is not None or time.monotonic() > deadline:
            peer.stop()
            tail = (folder / "orthanc.log").read_text(errors="replace")[-2000:]
            pytest.fail(f"Orthanc did not start:\n{tail}")
        time.sleep(0.2)
    return peer


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    """An empty Orthanc for the module."""
    peer = launch_orthanc(tmp_path_factory.mktemp("orthanc"))
    yield peer
    peer.stop()


@pytest.fixture(scope="session")
def lidc_0001() -> Path:
    """../shared/data/ct/LIDC-IDRI-0001: one CT series of 133 instances."""
    from tests.conftest import shared_root

    root = shared_root()
    if root is None:
        skip_or_fail("../shared/data is absent (set LUCIDA_SHARED to its parent folder)",
                     REQUIRE_SHARED)
    folder = root / "data" / "ct" / "LIDC-IDRI-0001"
    if len(list(folder.glob("*.dcm"))) != LIDC_INSTANCES:
        skip_or_fail(f"{folder} does not hold the {LIDC_INSTANCES} instances of "
                     "LIDC-IDRI-0001", REQUIRE_SHARED)
    return folder


def lidc_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.dcm"))


@pytest.fixture(scope="module")
def orthanc_lidc(orthanc: Orthanc, request: pytest.FixtureRequest) -> Orthanc:
    """The module's Orthanc holding LIDC-IDRI-0001 (uploaded once)."""
    folder = request.getfixturevalue("lidc_0001")
    if not orthanc.uploaded:
        orthanc.upload(lidc_files(folder))
    return orthanc
