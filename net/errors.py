"""Errors of the network room."""

from __future__ import annotations

from core.errors import LucidaError


class NetworkError(LucidaError, RuntimeError):
    """A peer that cannot be reached, refuses us, times out or answers with a failure.

    The message names the node, what was being done and what the user can check.
    """


class NodeNotFoundError(LucidaError, KeyError):
    """No saved node has this name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "no such node"
