"""Remote DICOM nodes kept in the library, and Lucida's own application entity.

A node speaks either DIMSE (AE title + host + port, optionally TLS) or
DICOMweb (a base URL), never both: what the user typed is validated once here
so every later call can trust it.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.errors import LucidaError
from net.errors import NodeNotFoundError
from store.library import Library

# PS3.5 6.2: AE is 1–16 characters of the default repertoire without backslash or
# control characters; leading/trailing spaces are not significant.
_AE_CHARS = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")


def check_ae_title(value: str) -> str:
    """The AE title stripped of padding, or ValueError saying why it is not one."""
    title = value.strip()
    if not title:
        raise ValueError("an AE title must not be empty")
    if not _AE_CHARS.match(title):
        raise ValueError(f"AE title {value!r} must be 1 to 16 printable ASCII characters "
                         "without a backslash")
    return title


class Node(BaseModel):
    """One remote node: DIMSE (``ae_title``, ``host``, ``port``, ``tls``) or DICOMweb."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    ae_title: str = ""
    host: str = ""
    port: int = 0
    tls: bool = False
    dicomweb_url: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        value = value.strip()
        if not value or any(ord(c) < 32 for c in value):
            raise ValueError("a node name must be printable text")
        return value

    @field_validator("ae_title")
    @classmethod
    def _ae(cls, value: str) -> str:
        return check_ae_title(value) if value.strip() else ""

    @field_validator("dicomweb_url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"DICOMweb URL {value!r} must start with http:// or https://")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Node:
        dimse = bool(self.ae_title or self.host or self.port)
        if dimse and self.dicomweb_url:
            raise ValueError("a node is either DIMSE (AE title, host, port) or DICOMweb "
                             "(URL), not both")
        if not dimse and not self.dicomweb_url:
            raise ValueError("a node needs an AE title, host and port, or a DICOMweb URL")
        if dimse:
            if not self.ae_title or not self.host.strip():
                raise ValueError("a DIMSE node needs an AE title and a host")
            if not 1 <= self.port <= 65535:
                raise ValueError(f"port {self.port} must be between 1 and 65535")
        return self

    @property
    def kind(self) -> Literal["dimse", "dicomweb"]:
        return "dicomweb" if self.dicomweb_url else "dimse"

    def describe(self) -> str:
        """One line for lists: ``NAME  AE@host:port`` or the URL."""
        if self.kind == "dicomweb":
            return self.dicomweb_url
        return f"{self.ae_title}@{self.host}:{self.port}" + (" (TLS)" if self.tls else "")


class LocalAE(BaseModel):
    """Lucida's own application entity (the calling AE title, and where its SCP listens)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ae_title: str = "LUCIDA"
    port: int = Field(default=11112, ge=0, le=65535)
    bind: str = "127.0.0.1"

    @field_validator("ae_title")
    @classmethod
    def _ae(cls, value: str) -> str:
        return check_ae_title(value)


def node_from_config(name: str, config: dict[str, Any]) -> Node:
    """A Node from its saved config; LucidaError when it no longer validates."""
    try:
        return Node.model_validate({**config, "name": name})
    except ValidationError as exc:
        raise LucidaError(f"saved network node {name!r} is not valid: "
                          f"{exc.errors()[0]['msg']}") from exc


def list_nodes(lib: Library) -> list[Node]:
    """Every valid saved node, by name (an invalid one is left out, not deleted)."""
    out = []
    for name, config in lib.network_nodes():
        try:
            out.append(node_from_config(name, config))
        except LucidaError:
            continue
    return out


def get_node(lib: Library, name: str) -> Node:
    """The node called ``name``; NodeNotFoundError naming it (and the known ones)."""
    for saved, config in lib.network_nodes():
        if saved == name:
            return node_from_config(saved, config)
    known = ", ".join(n for n, _ in lib.network_nodes()) or "none yet"
    raise NodeNotFoundError(f"no network node named {name!r} (known: {known}); "
                            "add one with `lucida nodes add`")


def add_node(lib: Library, node: Node, replace: bool = False) -> None:
    """Save ``node``; LucidaError when the name is taken and ``replace`` is False."""
    if not replace and any(saved == node.name for saved, _ in lib.network_nodes()):
        raise LucidaError(f"a network node named {node.name!r} exists already; "
                          "remove it first or replace it")
    lib.save_network_node(node.name, node.model_dump(exclude={"name"}))


def remove_node(lib: Library, name: str) -> bool:
    """Forget the node ``name``; False when there was none."""
    return lib.remove_network_node(name)
