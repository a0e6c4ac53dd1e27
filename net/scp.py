"""Lucida's storage SCP: receives C-STORE from allow-listed peers into the library.

The first thing in Lucida that listens on a network, so it is strict: off
unless started, loopback unless told otherwise, only the calling AE titles
(and optionally hosts) on the allow list, only the storage SOP classes and
transfer syntaxes Lucida reads, a size limit per instance and per
association, TLS when a certificate and key are given, and every instance
through the :class:`net.filing.Filer` (the same checks as an import).
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.transport import ThreadedAssociationServer

from net.dimse import Verification
from net.errors import NetworkError
from net.filing import READABLE_TRANSFER_SYNTAXES, Filer, readable_sop_class
from net.nodes import check_ae_title
from net.transfer import OUT_OF_RESOURCES, InstanceOutcome

log = logging.getLogger(__name__)

#: The storage SOP classes the SCP accepts.
SCP_STORAGE_CLASSES: tuple[str, ...] = tuple(
    c.abstract_syntax for c in AllStoragePresentationContexts
    if c.abstract_syntax and readable_sop_class(c.abstract_syntax))

Listener = Callable[[InstanceOutcome, int], None]


@dataclass
class ScpConfig:
    """Where and for whom the SCP listens; ``port`` 0 picks a free one."""

    ae_title: str
    port: int
    bind: str = "127.0.0.1"
    allowed_aes: list[str] = field(default_factory=list)
    allowed_hosts: list[str] = field(default_factory=list)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_instance_mb: float = 2048.0
    max_association_mb: float = 20000.0
    max_associations: int = 4
    timeout_s: float = 30.0


class StorageSCP:
    """A storage SCP in background threads; :meth:`start` / :meth:`stop`."""

    def __init__(self, config: ScpConfig, filer: Filer,
                 on_received: Callable[[InstanceOutcome], None] | None = None) -> None:
        self.config = config
        self.filer = filer
        self.on_received = on_received
        self._listeners: list[Listener] = []
        self._server: Any = None
        self._bytes: dict[int, int] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle

    @property
    def is_running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        """The port listened on (the real one when configured as 0); 0 when stopped."""
        return int(self._server.server_address[1]) if self._server is not None else 0

    def _ssl_context(self) -> ssl.SSLContext | None:
        cert, key = self.config.tls_cert, self.config.tls_key
        if cert is None and key is None:
            return None
        if cert is None or key is None:
            raise NetworkError("TLS needs both a certificate and a key file")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(str(cert), str(key))
        except (OSError, ssl.SSLError) as exc:
            raise NetworkError(f"cannot load the TLS certificate {cert} and key {key}: "
                               f"{exc}") from exc
        return context

    def _server_class(self) -> type[ThreadedAssociationServer]:
        """pynetdicom's server, closing a connection from a host off the allow list as soon as
        it is accepted: no association, nothing read from it (socketserver's verify_request)."""
        scp = self

        class HostFilteredServer(ThreadedAssociationServer):
            def verify_request(self, request: Any, client_address: Any) -> bool:
                host = str(client_address[0])
                if scp._host_allowed(host):
                    return True
                log.warning("storage SCP: refused a connection from %s (host not allowed)",
                            host)
                return False

        return HostFilteredServer

    def start(self) -> None:
        """Listen; NetworkError when the port is taken or the configuration is invalid."""
        if self._server is not None:
            return
        cfg = self.config
        allowed = [check_ae_title(a) for a in cfg.allowed_aes if a.strip()]
        if not allowed:
            raise NetworkError("the storage SCP needs at least one allowed calling AE title")
        ae = AE(ae_title=check_ae_title(cfg.ae_title))
        ae.require_calling_aet = allowed
        ae.maximum_associations = cfg.max_associations
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = cfg.timeout_s
        ae.maximum_pdu_size = 1 << 20
        for sop_class in SCP_STORAGE_CLASSES:
            ae.add_supported_context(sop_class, list(READABLE_TRANSFER_SYNTAXES))
        ae.add_supported_context(Verification)
        handlers: list[Any] = [
            (evt.EVT_C_STORE, self._on_store), (evt.EVT_ACCEPTED, self._on_accepted),
            (evt.EVT_RELEASED, self._forget), (evt.EVT_ABORTED, self._forget)]
        try:
            # ae.start_server(block=False), with our server class.
            server = ae.make_server((cfg.bind, cfg.port), evt_handlers=handlers,
                                    ssl_context=self._ssl_context(),
                                    server_class=self._server_class())
        except OSError as exc:
            raise NetworkError(f"the storage SCP cannot listen on {cfg.bind}:{cfg.port}: "
                               f"{exc.strerror or exc}") from exc
        ae._servers.append(server)  # as start_server does: server.shutdown() removes it
        threading.Thread(target=server.serve_forever, name="lucida-storage-scp",
                         daemon=True).start()
        self._server = server
        log.info("storage SCP %s listening on %s:%d", cfg.ae_title, cfg.bind, self.port)

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
        self.filer.flush()

    # ------------------------------------------------------------------ listeners

    def add_listener(self, listener: Listener) -> Listener:
        """Also call ``listener(outcome, bytes)`` per received instance (until removed)."""
        with self._lock:
            self._listeners.append(listener)
        return listener

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    # ------------------------------------------------------------------ handlers

    def _host_allowed(self, address: str) -> bool:
        hosts = self.config.allowed_hosts
        return not hosts or address in hosts

    def _on_accepted(self, event: evt.Event) -> None:
        address = str(event.assoc.requestor.address)
        if not self._host_allowed(address):
            log.warning("storage SCP: aborting association from %s (host not allowed)",
                        address)
            event.assoc.abort()

    def _forget(self, event: evt.Event) -> None:
        with self._lock:
            self._bytes.pop(id(event.assoc), None)

    def _on_store(self, event: evt.Event) -> int:
        address = str(event.assoc.requestor.address)
        data = event.encoded_dataset()
        size = len(data)
        if not self._host_allowed(address):
            outcome = InstanceOutcome("", OUT_OF_RESOURCES, False, f"host {address} not allowed")
        else:
            with self._lock:
                total = self._bytes.get(id(event.assoc), 0) + size
                self._bytes[id(event.assoc)] = total
            limit = self.config.max_association_mb * 1e6
            if total > limit:
                outcome = InstanceOutcome(
                    "", OUT_OF_RESOURCES, False,
                    f"association over its limit of {limit / 1e6:g} MB")
            else:
                cap = int(self.config.max_instance_mb * 1e6)
                if size > cap:
                    outcome = InstanceOutcome("", OUT_OF_RESOURCES, False,
                                              f"instance of {size / 1e6:.1f} MB is over the "
                                              f"limit of {cap / 1e6:g} MB")
                else:
                    outcome = self.filer.file_bytes(data)
        if not outcome.ok:
            log.warning("storage SCP refused an instance from %s: %s", address,
                        outcome.message)
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(outcome, size)
        if self.on_received is not None:
            self.on_received(outcome)
        return outcome.status
