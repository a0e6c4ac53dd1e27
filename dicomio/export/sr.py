"""The DICOM SR of the kept findings: a TID 1500 measurement report (highdicom).

One volumetric ROI group (TID 1411) per kept finding, referencing its SEG segment:
volume, longest diameter, the centroid as a SCOORD3D point, tracking identifier and
UID, finding type, the reader's decision as a qualitative evaluation and, for model
output, the algorithm. Observer context: the reviewer (person) and the model (device).
The audit log's head hash is a text item of the report's Qualitative Evaluations.
"""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes

from dicomio.export.codes import DECISION_NAME, DECISION_VALUES, LUCIDA_SCHEME
from dicomio.export.model import AlgorithmInfo, ExportContext, ExportFinding
from dicomio.export.seg import _person, code

MM = hd.sr.CodedConcept("mm", "UCUM", "millimeter")
MM3 = hd.sr.CodedConcept("mm3", "UCUM", "cubic millimeter")
AUDIT_HASH = hd.sr.CodedConcept("audit-head", LUCIDA_SCHEME, "Audit log head hash")
QUALITATIVE_EVALUATIONS = hd.sr.CodedConcept("C0034375", "UMLS", "Qualitative Evaluations")


def observers(algorithm: AlgorithmInfo, reviewer: str, device_uid: str
              ) -> tuple[hd.sr.ObserverContext, hd.sr.ObserverContext]:
    """The reviewer (person) and the model (device) as observer contexts."""
    person = hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
            name=_person(reviewer)))
    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=device_uid, name=algorithm.name[:64], manufacturer_name=algorithm.manufacturer,
            model_name=f"{algorithm.pack_id or algorithm.name} {algorithm.version}"[:64]))
    return person, device


def _group(finding: ExportFinding, algorithm: AlgorithmInfo, seg: hd.seg.Segmentation
           ) -> hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations:
    tracking = hd.sr.TrackingIdentifier(uid=finding.tracking_uid,
                                        identifier=finding.tracking_id)
    algo = (None if finding.origin == "reader"
            else hd.sr.AlgorithmIdentification(name=algorithm.name, version=algorithm.version
                                                or "0"))
    measurements = [
        hd.sr.Measurement(name=codes.SCT.Volume, value=float(finding.volume_mm3), unit=MM3,
                          algorithm_id=algo),
        hd.sr.Measurement(name=codes.SCT.Diameter, value=float(finding.longest_diameter_mm),
                          unit=MM, derivation=codes.SCT.Maximum, algorithm_id=algo),
    ]
    decision = hd.sr.QualitativeEvaluation(name=code(DECISION_NAME),
                                           value=code(DECISION_VALUES[finding.decision]))
    group = hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking,
        # Built by hand: from_segmentation fails on a one-segment SEG (highdicom 0.28
        # looks for SegmentIdentificationSequence per frame; it is in the shared groups).
        referenced_segment=hd.sr.ReferencedSegment(
            sop_class_uid=seg.SOPClassUID, sop_instance_uid=seg.SOPInstanceUID,
            segment_number=finding.number,
            source_series=hd.sr.SourceSeriesForSegmentation(
                seg.ReferencedSeriesSequence[0].SeriesInstanceUID)),
        finding_type=code(finding.property_type),
        finding_category=code(finding.category),
        algorithm_id=algo,
        measurements=measurements,
        qualitative_evaluations=[decision],
    )
    return group


def _centroid_item(finding: ExportFinding, frame_of_reference_uid: str
                   ) -> hd.sr.Scoord3DContentItem:
    return hd.sr.Scoord3DContentItem(
        name=codes.DCM.Center,
        graphic_type=hd.sr.GraphicTypeValues3D.POINT,
        graphic_data=np.array([finding.centroid_lps], dtype=np.float64),
        frame_of_reference_uid=frame_of_reference_uid,
        relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)


def build_sr(findings: Sequence[ExportFinding], algorithm: AlgorithmInfo,
             context: ExportContext, seg: hd.seg.Segmentation) -> hd.sr.Comprehensive3DSR:
    groups = [_group(f, algorithm, seg) for f in findings]
    for group, finding in zip(groups, findings, strict=True):
        # The centroid is a SCOORD3D point in the group (TID 1411 is extensible).
        group[0].ContentSequence.append(_centroid_item(finding, seg.FrameOfReferenceUID))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(*observers(
            algorithm, context.reviewer, hd.UID())),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=groups,
        title=codes.cid7021.ImagingMeasurementReport,
    )
    if context.audit_head_hash:
        report[0].ContentSequence.append(_audit_container(context.audit_head_hash))
    return hd.sr.Comprehensive3DSR(
        # Evidence: what the content references by instance — the SEG (the source
        # series is referenced by its UID through the SEG).
        evidence=[seg],
        content=report[0],
        series_instance_uid=hd.UID(),
        series_number=context.series_number_base + 2,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=algorithm.manufacturer,
        is_complete=True,
        is_final=False,
        is_verified=False,
        series_description="Lucida reviewed findings (research use only)",
    )


def _audit_container(head_hash: str) -> hd.sr.ContainerContentItem:
    container = hd.sr.ContainerContentItem(
        name=QUALITATIVE_EVALUATIONS,
        relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)
    container.ContentSequence = pydicom.Sequence([hd.sr.TextContentItem(
        name=AUDIT_HASH, value=head_hash,
        relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)])
    return container
