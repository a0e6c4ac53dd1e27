"""Writing a pack whose ONNX graph Lucida builds itself with fixed weights (the demo rules,
the lung mask): the graph, a manifest naming its sha256, the model card; byte for byte
reproducible, so the bundled copy in ``resources/models`` can be checked against a rebuild.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.atomic import write_bytes, write_text

BUNDLED = Path(__file__).resolve().parent.parent / "resources" / "models"


def serialize(graph: Any, producer: str, version: str) -> bytes:
    """The model bytes of a fixed graph: opset 17, IR 8 (what every onnxruntime since 1.14
    reads), producer named; the same graph gives the same bytes, which the bundled copies'
    sha256 relies on."""
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name=producer, producer_version=version)
    model.ir_version = 8
    return bytes(model.SerializeToString())


def write_fixed_pack(folder: Path, onnx: bytes, manifest: Callable[[str], dict[str, Any]],
                     card: str) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_bytes(folder / "model.onnx", onnx)
    sha = hashlib.sha256(onnx).hexdigest()
    write_text(folder / "manifest.json", json.dumps(manifest(sha), indent=2) + "\n")
    write_text(folder / "MODEL_CARD.md", card)
    return folder


def main(pack_id: str, write: Callable[[Path], Path]) -> None:
    """``python -m inference.<builder> [FOLDER]``: the bundled copy by default."""
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else BUNDLED / pack_id
    print(write(out))
