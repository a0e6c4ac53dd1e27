"""What a transfer (retrieve, send, receive) did, instance by instance."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

#: DIMSE status codes Lucida names itself (PS3.7 C); a peer's others are reported as hex.
SUCCESS = 0x0000
#: "Refused: out of resources" — what the SCP answers for an instance over the size limit.
OUT_OF_RESOURCES = 0xA700
#: "Error: data set does not match SOP class" — truncated or undecodable data.
CANNOT_UNDERSTAND = 0xC000
#: "Refused: SOP class not supported".
SOP_CLASS_NOT_SUPPORTED = 0x0122
#: "Processing failure" — writing or indexing failed on our side.
PROCESSING_FAILURE = 0x0110


@dataclass(frozen=True)
class InstanceOutcome:
    """One instance: filed (``ok``), skipped as already present (``ok``) or refused."""

    sop_instance_uid: str
    status: int
    ok: bool
    message: str = ""
    path: Path | None = None


@dataclass
class TransferReport:
    """The result of one transfer; ``error`` is the one line that says why it stopped."""

    kind: Literal["retrieve", "send", "receive"]
    node: str
    instances: list[InstanceOutcome] = field(default_factory=list)
    bytes: int = 0
    elapsed_s: float = 0.0
    error: str | None = None
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        """Finished, not cancelled, and every instance succeeded."""
        return self.error is None and not self.cancelled and not self.failed

    @property
    def failed(self) -> list[InstanceOutcome]:
        return [o for o in self.instances if not o.ok]

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self) -> str:
        """One line for a log, the CLI or the transfer list."""
        done = sum(1 for o in self.instances if o.ok)
        text = (f"{self.kind} {self.node}: {done}/{len(self.instances)} instances, "
                f"{self.bytes / 1e6:.1f} MB in {self.elapsed_s:.1f} s "
                f"({self.mb_per_s:.1f} MB/s)")
        if self.cancelled:
            text += ", cancelled"
        if self.error:
            text += f"; {self.error}"
        return text
