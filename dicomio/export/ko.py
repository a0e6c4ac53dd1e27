"""The Key Object Selection of the key images: the source image through each kept
finding's centroid (highdicom)."""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes

from dicomio.export.grid import SourceGrid
from dicomio.export.model import AlgorithmInfo, ExportContext, ExportFinding
from dicomio.export.sr import observers


def key_slice(finding: ExportFinding, grid: SourceGrid) -> int:
    """The volume slice through the centroid, or the nearest one with a source image."""
    k = float((np.linalg.inv(grid.affine) @ np.array([*finding.centroid_lps, 1.0]))[0])
    return min(grid.slots, key=lambda s: (abs(s - k), s))


def build_ko(findings: Sequence[ExportFinding], algorithm: AlgorithmInfo,
             context: ExportContext, grid: SourceGrid
             ) -> tuple[hd.ko.KeyObjectSelectionDocument, dict[int, int]]:
    """The KO document and, per finding number, its key slice k."""
    slices = {f.number: key_slice(f, grid) for f in findings}
    images: dict[str, pydicom.Dataset] = {}
    for k in sorted(set(slices.values())):
        ds = grid.dataset_of(k)
        images.setdefault(str(ds.SOPInstanceUID), ds)
    person, device = observers(algorithm, context.reviewer, hd.UID())
    names = ", ".join(f.tracking_id for f in findings)
    selection = hd.ko.KeyObjectSelection(
        document_title=codes.DCM.OfInterest,
        referenced_objects=list(images.values()),
        observer_person_context=person,
        observer_device_context=device,
        description=f"Key images of the reviewed findings {names}"[:1024],
    )
    document = hd.ko.KeyObjectSelectionDocument(
        evidence=list(images.values()),
        content=selection,
        series_instance_uid=hd.UID(),
        series_number=context.series_number_base + 3,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=algorithm.manufacturer,
        series_description="Lucida key images (research use only)",
    )
    return document, slices
