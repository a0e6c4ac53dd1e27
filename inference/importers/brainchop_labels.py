"""Label names and colours from a brainchop model folder's colormap / labels files."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference.importers.brainchop_topology import MeshNetImportError


@dataclass(frozen=True)
class Label:
    value: int
    name: str
    rgb: tuple[int, int, int]


def _from_colormap(doc: Any, where: str) -> list[Label]:
    try:
        names = doc["labels"]
        r, g, b = doc["R"], doc["G"], doc["B"]
    except (KeyError, TypeError) as exc:
        raise MeshNetImportError(f"{where}: field {exc} is missing") from exc
    if not len(names) == len(r) == len(g) == len(b):
        raise MeshNetImportError(f"{where}: 'labels', 'R', 'G', 'B' differ in length "
                                 f"({len(names)}, {len(r)}, {len(g)}, {len(b)})")
    return [Label(i, str(n), (int(r[i]), int(g[i]), int(b[i]))) for i, n in enumerate(names)]


_RGB = re.compile(r"rgb\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\)")


def _from_v3(names_doc: Any, lut_doc: Any, where: str) -> list[Label]:
    labels = []
    for i in range(len(names_doc)):
        key = str(i)
        if key not in names_doc or key not in lut_doc:
            raise MeshNetImportError(f"{where}: label {key!r} is missing")
        match = _RGB.fullmatch(str(lut_doc[key]).strip())
        if match is None:
            raise MeshNetImportError(f"{where}: colour {lut_doc[key]!r} of label {key} "
                                     "is not rgb(r,g,b)")
        rgb = (int(match[1]), int(match[2]), int(match[3]))
        labels.append(Label(i, str(names_doc[key]), rgb))
    return labels


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MeshNetImportError(f"{path.name}: not readable JSON ({exc})") from exc


def read_labels(folder: Path, n_classes: int) -> tuple[list[Label], str]:
    """The first label file whose class count matches the network's output; and its name.

    ``colormap.json`` is the web app's own; some folders hold several (model5_gw_ae:
    a 2-label brain map for its masking entries and ``colormap3.json`` for the 3 classes),
    so the count decides. ``v3_labels.json`` + ``v3_colorLUT.json`` come last.
    """
    candidates: list[tuple[str, list[Label]]] = []
    for path in sorted(folder.glob("colormap*.json"), key=lambda p: (p.name != "colormap.json",
                                                                     p.name)):
        candidates.append((path.name, _from_colormap(_load(path), path.name)))
    v3_names, v3_lut = folder / "v3_labels.json", folder / "v3_colorLUT.json"
    if v3_names.is_file() and v3_lut.is_file():
        candidates.append((f"{v3_names.name}+{v3_lut.name}",
                           _from_v3(_load(v3_names), _load(v3_lut), v3_names.name)))
    for source, labels in candidates:
        if len(labels) == n_classes:
            return labels, source
    found = ", ".join(f"{s} ({len(ls)} labels)" for s, ls in candidates) or "none"
    raise MeshNetImportError(f"{folder.name}: no colormap/labels file with {n_classes} labels "
                             f"(the output layer's 'filters'); found: {found}")
