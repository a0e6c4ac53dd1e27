"""Shared by the ``bench/_author_*.py`` drivers, which run in the authors' side venvs.

Standard library only: the side venvs have the authors' packages, not Lucida's.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from typing import Any, NoReturn

from _common import peak_rss_mb  # stdlib only, so the authors' side venvs can import it

__all__ = ["emit", "forbid_network", "peak_rss_mb", "torch_threads"]

_LOCAL_HOSTS = {None, "", "localhost", "127.0.0.1", "::1"}


def forbid_network() -> None:
    """Make any attempt to reach another host fail loudly (the tools must not download)."""
    def refuse(what: object) -> NoReturn:
        raise RuntimeError(f"bench: network access attempted ({what!r}); the authors' tool "
                           "tried to download something: stage the files instead")

    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if (host.decode() if isinstance(host, bytes) else host) not in _LOCAL_HOSTS:
            refuse(host)
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in _LOCAL_HOSTS:
            refuse(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in _LOCAL_HOSTS:
            refuse(address)
        return real_connect_ex(self, address)

    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]


def torch_threads(n: int) -> None:
    """Intra-op threads = n, inter-op 1 (OMP/MKL_NUM_THREADS are set by the parent too)."""
    import torch

    torch.set_num_threads(n)
    torch.set_num_interop_threads(1)


def emit(result: dict[str, Any]) -> None:
    """The driver's result: one JSON line, the last line of stdout."""
    sys.stdout.flush()
    print(json.dumps(result), flush=True)


def env_threads() -> int:
    return int(os.environ.get("OMP_NUM_THREADS", "1"))
