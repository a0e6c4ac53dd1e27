"""The model pack manifest: pure data, strictly validated.

A manifest says what a model expects and what it produces; every pre- and
post-processing step comes from the fixed vocabulary below (no code, no
expressions). Unknown keys are errors; ``schema_version`` gates future changes.

Conventions used by the fields:

* ``input.orientation`` names, for the model's grid axes ``(i, j, k)``, the
  patient direction each axis *increases toward* (nibabel / DICOM letters:
  ``RAS`` = i→Right, j→Anterior, k→Superior; ``LPS`` is DICOM's native grid;
  ``LIA`` is FreeSurfer's conformed space).
* ``input.axis_order`` says how those axes are laid out in the tensor:
  ``"kji"`` = ``[k, j, i]`` (SimpleITK / Lucida order), ``"ijk"`` = ``[i, j, k]``
  (nibabel order). The tensor is ``[batch, channel, a0, a1, a2]``.
* ``tiling.patch_size`` and every other per-axis list are in tensor order.
* ``input.spacing_mm`` is in grid order ``(i, j, k)``.
"""

from __future__ import annotations

import json
import re
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from core.errors import ModelPackError

SCHEMA_VERSION = 1
_ORIENTATION_RE = re.compile(r"^[LRAPSI]{3}$")
_SEMVER_RE = re.compile(r"^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?$")
# An id becomes the pack's folder name in the library: no slash, backslash or leading '.'.
_ID_RE = re.compile(r"[a-z0-9][a-z0-9._-]{1,63}")
_ID_RULE = ("2-64 characters of lowercase letters, digits, '.', '_' or '-', starting with a "
            "letter or digit, not ending with '.', not a Windows device name such as 'nul'")
# Windows opens these as devices whatever the folder or extension ("nul", "com1.x").
_WINDOWS_DEVICES = frozenset(["con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
                              *(f"lpt{i}" for i in range(10))])
# Lucida's synthetic demo series (dicomio.demo.DEMO_SERIES_UID: a name-based UUID, the same
# on every machine). inference may not import dicomio; a test keeps the two equal.
DEMO_SERIES_UID = "2.25.71717754956612133667887322918880858546"
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- input -----------------------------------------------------------------


class HUWindow(_Strict):
    """Clip to ``[low, high]`` (Hounsfield units) and map linearly to ``[out_min, out_max]``."""

    kind: Literal["hu_window"]
    low: float
    high: float
    out_min: float = 0.0
    out_max: float = 1.0
    clip: bool = True

    @model_validator(mode="after")
    def _order(self) -> HUWindow:
        if self.high <= self.low:
            raise ValueError("high must be greater than low")
        return self


class ZScore(_Strict):
    """Subtract the mean and divide by the standard deviation (optionally of nonzero voxels)."""

    kind: Literal["zscore"]
    nonzero_only: bool = False
    mean: float | None = None  # fixed statistics (dataset-level) instead of per-image
    std: float | None = Field(default=None, gt=0)
    # 1: the sample standard deviation (torch's default ``std()``); 0: numpy's default.
    ddof: Literal[0, 1] = 0
    # "all": statistics over every voxel (exact); "sample": a strided ~2 M voxel sample.
    statistics: Literal["sample", "all"] = "sample"


class MinMax(_Strict):
    """Map the image's minimum and maximum to ``[out_min, out_max]``."""

    kind: Literal["minmax"]
    out_min: float = 0.0
    out_max: float = 1.0


class Percentiles(_Strict):
    """Map the ``lower``/``upper`` percentiles to ``[out_min, out_max]``, optionally clipping."""

    kind: Literal["percentiles"]
    lower: float = Field(ge=0, le=100)
    upper: float = Field(ge=0, le=100)
    out_min: float = 0.0
    out_max: float = 1.0
    clip: bool = True
    # ``(x - lo) / (hi - lo + epsilon)``, the result clipped to [out_min, out_max] (brainchop's
    # qnormalize); 0 keeps the plain map with the input clipped to [lo, hi].
    epsilon: float = Field(default=0.0, ge=0.0)
    # "all": percentiles (numpy linear) over every voxel, for models proven against an exact
    # formula; "sample": a strided sample of about 2 M voxels (cheaper, approximate);
    # "localizer": the values the pack's localizer (first stage) found on its own input, so
    # both stages of a cascade see one intensity scale (deepbet).
    statistics: Literal["sample", "all", "localizer"] = "sample"

    @model_validator(mode="after")
    def _order(self) -> Percentiles:
        if self.upper <= self.lower:
            raise ValueError("upper must be greater than lower")
        return self


class Conform(_Strict):
    """FreeSurfer-style conform intensities: robust range to uint8 ``0..255``.

    Like ``mri_convert --conform``: the ``0`` value maps to 0 and the
    ``upper`` percentile of nonzero voxels to 255, clipped; ``scale_to`` can
    then map ``0..255`` to e.g. ``0..1`` for networks trained that way.
    """

    kind: Literal["conform"]
    upper_percentile: float = Field(default=99.9, gt=0, le=100)
    scale_to: tuple[float, float] = (0.0, 255.0)


class NoNormalization(_Strict):
    kind: Literal["none"]


class Affine(_Strict):
    """``x * scale + offset`` (e.g. ImageNet-style ``0.226 x + 0.449`` after a z-score)."""

    kind: Literal["affine"]
    scale: float
    offset: float = 0.0


ChainStep = Annotated[HUWindow | ZScore | MinMax | Percentiles | Affine,
                      Field(discriminator="kind")]


class Chain(_Strict):
    """Several normalisations applied in turn, each to the previous one's result."""

    kind: Literal["chain"]
    steps: list[ChainStep] = Field(min_length=1, max_length=8)


Normalization = Annotated[
    HUWindow | ZScore | MinMax | Percentiles | Conform | NoNormalization | Affine | Chain,
    Field(discriminator="kind"),
]


def uses_localizer_statistics(spec: Normalization) -> bool:
    steps = spec.steps if isinstance(spec, Chain) else [spec]
    return any(isinstance(s, Percentiles) and s.statistics == "localizer" for s in steps)


class CropToSpec(_Strict):
    """Run the network only over the box of another model's labels (the lungs, for a
    nodule detector), grown by ``margin_mm``; outside the box the output is background.
    That model runs first, as for ``mask_by``."""

    model: str
    labels: list[int] | None = None  # labels of the other model that count (None: all)
    margin_mm: float = Field(default=10.0, ge=0.0, le=200.0)


class InputSpec(_Strict):
    tensor_name: str | None = None
    channels: int = Field(default=1, ge=1, le=1)  # multi-channel input: not yet supported
    orientation: str = "LPS"
    axis_order: Literal["kji", "ijk"] = "kji"
    spacing_mm: tuple[float, float, float] | Literal["native"] = "native"
    # A fixed grid centred on the volume (FreeSurfer conform: [256, 256, 256]).
    shape: tuple[int, int, int] | None = None
    normalization: Normalization = Field(default_factory=lambda: NoNormalization(kind="none"))
    pad_value: float | Literal["min"] = "min"  # value of voxels outside the image
    interpolation: Literal["linear", "bspline", "nearest"] = "linear"
    # "aligned": a grid whose axes point exactly along ``orientation`` (an oblique series is
    # resampled). "closest": the series' own voxels, axes only permuted and flipped to the
    # orientation nearest ``orientation``, never resampled (nibabel's
    # ``as_closest_canonical``, which deepbet and many MR models use); needs native spacing
    # and no fixed shape.
    grid: Literal["aligned", "closest"] = "aligned"
    crop_to: CropToSpec | None = None

    @model_validator(mode="after")
    def _closest(self) -> InputSpec:
        if self.grid == "closest" and (self.spacing_mm != "native" or self.shape is not None):
            raise ValueError("grid 'closest' keeps the series' voxels: spacing_mm must be "
                             "'native' and shape null")
        return self

    @field_validator("orientation")
    @classmethod
    def _orientation(cls, value: str) -> str:
        value = value.upper()
        if not _ORIENTATION_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not a 3-letter orientation code such as LPS, RAS, LIA")
        axes = {"L": "x", "R": "x", "P": "y", "A": "y", "S": "z", "I": "z"}
        if len({axes[c] for c in value}) != 3:
            raise ValueError(f"{value!r} uses one patient axis twice")
        return value

    @field_validator("spacing_mm")
    @classmethod
    def _spacing(
        cls, value: tuple[float, float, float] | str
    ) -> tuple[float, float, float] | str:
        if not isinstance(value, str) and any(s <= 0 for s in value):
            raise ValueError("every spacing must be > 0 mm")
        return value

    @field_validator("shape")
    @classmethod
    def _shape(cls, value: tuple[int, int, int] | None) -> tuple[int, int, int] | None:
        if value is not None and any(s < 1 for s in value):
            raise ValueError("every size must be >= 1")
        return value


# --- tiling ----------------------------------------------------------------


class TilingSpec(_Strict):
    """How the model-space volume is cut into network inputs.

    ``sliding``: overlapping patches of ``patch_size``, output same size as input.
    ``valid``: the network's output is its input minus ``output_margin`` voxels on
    each side (e.g. unpadded convolutions); tiles are placed so outputs cover
    the volume. ``whole``: the whole grid in one run (shape-agnostic networks),
    padded up to a multiple of ``divisible_by``.
    """

    mode: Literal["sliding", "valid", "whole"] = "sliding"
    patch_size: tuple[int, int, int] | None = None
    overlap: float = Field(default=0.25, ge=0.0, lt=1.0)
    blending: Literal["gaussian", "constant"] = "gaussian"
    sigma_scale: float = Field(default=0.125, gt=0.0, le=1.0)
    output_margin: tuple[int, int, int] = (0, 0, 0)
    divisible_by: int = Field(default=1, ge=1)
    batch_size: int = Field(default=2, ge=1, le=64)
    # How the volume is extended where tiles reach past it: the input's minimum
    # ("constant"), or the nearest edge voxel ("edge").
    padding: Literal["constant", "edge"] = "constant"
    # ``valid`` tiling, where the last tile of an axis goes: moved back so it ends at the
    # volume's edge ("at_edge"), or kept on the grid of output blocks with the input padded
    # past the end ("on_grid", as DeepMedic / BLAST-CT tile), which networks that subsample
    # need for every tile to see its voxels in the same phase.
    last_tile: Literal["at_edge", "on_grid"] = "at_edge"

    @model_validator(mode="after")
    def _consistent(self) -> TilingSpec:
        if self.mode in ("sliding", "valid") and self.patch_size is None:
            raise ValueError(f"patch_size is required for {self.mode!r} tiling")
        if self.patch_size is not None and any(p < 1 for p in self.patch_size):
            raise ValueError("patch_size entries must be >= 1")
        if any(m < 0 for m in self.output_margin):
            raise ValueError("output_margin entries must be >= 0")
        if self.mode != "valid" and any(self.output_margin):
            raise ValueError("output_margin is only used with 'valid' tiling")
        if self.mode == "valid" and self.patch_size is not None and any(
            p - 2 * m < 1 for p, m in zip(self.patch_size, self.output_margin, strict=True)
        ):
            raise ValueError("output_margin leaves no output voxels in the patch")
        return self


# --- output ----------------------------------------------------------------


class CodedConcept(_Strict):
    scheme: str  # e.g. "SCT"
    value: str
    meaning: str


class LabelSpec(_Strict):
    value: int = Field(ge=1, le=65535)
    name: str = Field(min_length=1)
    color: tuple[int, int, int] = (255, 0, 0)
    code: CodedConcept | None = None
    channel: int | None = Field(default=None, ge=0)  # output channel (default: value)

    @property
    def index(self) -> int:
        """The output channel (or a detector's class) this label reads: channel, else value."""
        return self.channel if self.channel is not None else self.value

    @field_validator("color")
    @classmethod
    def _color(cls, value: tuple[int, int, int]) -> tuple[int, int, int]:
        if any(not 0 <= c <= 255 for c in value):
            raise ValueError("colour components must be 0..255")
        return value


class DetectionSpec(_Strict):
    """How to read a detector's boxes: a tensor ``[N, K]`` (or ``[1, N, K]``), one row a box.

    Columns 0-5 are the box corners ``a0_min, a1_min, a2_min, a0_max, a1_max, a2_max``
    in the input tensor's voxel-edge coordinates (voxel n spans [n, n + 1) along its
    axis; axes in ``input.axis_order``), relative to the network input. Then a score
    column and, for multi-class detectors, a class column whose value picks the label
    (``labels[].channel``, else ``labels[].value``).
    """

    score_column: int = Field(default=6, ge=6)
    class_column: int | None = Field(default=None, ge=6)
    min_score: float = Field(default=0.5, ge=0.0, le=1.0)
    # Overlapping boxes of one class (3-D IoU above this) keep only the best score.
    nms_iou: float = Field(default=0.1, gt=0.0, le=1.0)
    max_detections: int = Field(default=100, ge=1, le=10000)

    @model_validator(mode="after")
    def _consistent(self) -> DetectionSpec:
        if self.class_column is not None and self.class_column == self.score_column:
            raise ValueError("class_column and score_column must differ")
        return self


class OutputSpec(_Strict):
    """What the network returns: per voxel ``[batch, channel, a0, a1, a2]``, or boxes
    (kind ``detections``, read as ``detections`` says; ``channels`` is then the number
    of columns per box)."""

    tensor_name: str | None = None
    # "label_index": one channel holding each voxel's class index (an ArgMax inside the
    # graph), mapped to labels by ``labels[].index``; a [C, ...] score volume is never held.
    kind: Literal["segmentation_logits", "probabilities", "anomaly_map", "detections",
                  "label_index"]
    activation: Literal["softmax", "sigmoid", "none"] = "none"
    channels: int = Field(ge=1, le=512)
    labels: list[LabelSpec] = Field(min_length=1)
    # Channel shown as the heat map ("foreground" = 1 - background for softmax).
    heatmap_channel: int | Literal["foreground", "none"] = "foreground"
    heatmap_name: str = "probability"
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    min_finding_mm3: float = Field(default=0.0, ge=0.0)
    accumulator_dtype: Literal["float32", "float16", "auto"] = "auto"
    detections: DetectionSpec | None = None

    @model_validator(mode="after")
    def _consistent(self) -> OutputSpec:
        values = [lab.value for lab in self.labels]
        if len(set(values)) != len(values):
            raise ValueError("label values must be unique")
        if self.kind == "detections":
            return self._consistent_detections()
        if self.detections is not None:
            raise ValueError("'detections' is only for output kind 'detections'")
        if self.kind == "label_index":
            if self.channels != 1 or self.activation != "none" or self.heatmap_channel != "none":
                raise ValueError("a label_index output has channels 1, activation 'none' and "
                                 "heatmap_channel 'none'")
            return self
        for lab in self.labels:
            ch = lab.index
            if ch >= self.channels:
                raise ValueError(
                    f"label {lab.value} ({lab.name}) uses channel {ch} but the output "
                    f"has {self.channels} channels"
                )
        if isinstance(self.heatmap_channel, int) and self.heatmap_channel >= self.channels:
            raise ValueError("heatmap_channel is beyond the output channels")
        if self.kind == "anomaly_map" and self.activation == "softmax":
            raise ValueError("an anomaly map cannot use softmax")
        return self

    @property
    def box_spec(self) -> DetectionSpec:
        """How to read a detector's boxes (the defaults when the manifest says nothing)."""
        return self.detections if self.detections is not None else DetectionSpec()

    def _consistent_detections(self) -> OutputSpec:
        spec = self.box_spec
        if self.channels < 7:
            raise ValueError("a detector returns at least 7 columns per box (6 corners and "
                             f"a score); channels is {self.channels}")
        for name in ("score_column", "class_column"):
            col = getattr(spec, name)
            if col is not None and col >= self.channels:
                raise ValueError(f"detections.{name} {col} is beyond the {self.channels} "
                                 "columns (channels)")
        if self.activation == "softmax":
            raise ValueError("detections take activation 'none' or 'sigmoid' (on the score)")
        if spec.class_column is None and len(self.labels) != 1:
            raise ValueError("a detector without detections.class_column has one label")
        return self


# --- post-processing -------------------------------------------------------


class ArgmaxStep(_Strict):
    step: Literal["argmax"]


class ThresholdStep(_Strict):
    step: Literal["threshold"]
    value: float | None = Field(default=None, ge=0.0, le=1.0)  # default: output.threshold


class KeepLargestStep(_Strict):
    step: Literal["keep_largest_component"]
    labels: list[int] | None = None  # default: every label
    # False: the largest 26-connected region of each label. True: the listed labels count as
    # one foreground and only its largest region is kept (brainchop's ``bwlabel`` filter).
    joint: bool = False


class FillHolesStep(_Strict):
    step: Literal["fill_holes"]
    labels: list[int] | None = None


class SizeFilterStep(_Strict):
    """Remove connected components smaller than ``min_mm3`` or larger than ``max_mm3``."""

    step: Literal["component_size_filter"]
    min_mm3: float = Field(default=0.0, ge=0.0)
    max_mm3: float | None = Field(default=None, gt=0.0)
    labels: list[int] | None = None
    connectivity: Literal[6, 18, 26] = 26


class MaskByStep(_Strict):
    """Keep only voxels inside another model's labels (e.g. lung mask)."""

    step: Literal["mask_by"]
    model: str
    labels: list[int] | None = None  # labels of the other model that count as inside
    dilate_mm: float = Field(default=0.0, ge=0.0)


class ComponentsStep(_Strict):
    """Connected components of each label become findings."""

    step: Literal["connected_components"]
    labels: list[int] | None = None
    min_mm3: float | None = Field(default=None, ge=0.0)  # default: output.min_finding_mm3
    # The operating point of a detector: a component whose highest heat-map score is below
    # it is no finding (and leaves the overlay); the threshold still sets its extent.
    min_score: float | None = Field(default=None, ge=0.0, le=1.0)
    connectivity: Literal[6, 18, 26] = 26
    max_findings: int = Field(default=500, ge=1)


class ClearBorderStep(_Strict):
    """Remove components of a label that touch the volume's boundary faces.

    ``lateral``: only the faces whose normal is not mostly superior/inferior (LPS z, from
    the affine), so a structure cut by the top and bottom slices (the lungs of a chest CT)
    stays while air around the body, which reaches the other faces, goes. ``all``: every
    face.
    """

    step: Literal["clear_border"]
    labels: list[int] | None = None
    faces: Literal["lateral", "all"] = "lateral"
    connectivity: Literal[6, 18, 26] = 26


class KeepLargeStep(_Strict):
    """Keep each label's components of at least ``min_fraction`` of its largest one's volume
    (both lungs stay; bowel gas and the stomach go)."""

    step: Literal["keep_large_components"]
    labels: list[int] | None = None
    min_fraction: float = Field(gt=0.0, le=1.0)
    connectivity: Literal[6, 18, 26] = 26


class FillHoles2DStep(_Strict):
    """Fill background enclosed by a label within each slice of ``plane`` (patient axes,
    from the affine): vessels and nodules inside the lung become lung."""

    step: Literal["fill_holes_2d"]
    labels: list[int] | None = None
    plane: Literal["axial", "coronal", "sagittal"] = "axial"


class ClosingStep(_Strict):
    """Morphological closing of each label by a ball of ``radius_mm`` (background between
    or inside a label's parts, narrower than the ball, joins the label; nothing is removed).

    ``grid_mm``: computed on a grid of about this voxel size (whole source voxels per
    block) for speed; the voxels added are exact to within one such block. 0: on the
    source grid itself.
    """

    step: Literal["closing"]
    labels: list[int] | None = None
    radius_mm: float = Field(gt=0.0, le=50.0)
    grid_mm: float = Field(default=2.0, ge=0.0, le=10.0)

    @model_validator(mode="after")
    def _grid(self) -> ClosingStep:
        if self.grid_mm > self.radius_mm:
            raise ValueError(f"grid_mm {self.grid_mm} is coarser than radius_mm "
                             f"{self.radius_mm}: the closing would be lost in the grid")
        return self


PostStep = Annotated[
    ArgmaxStep
    | ThresholdStep
    | KeepLargestStep
    | FillHolesStep
    | SizeFilterStep
    | MaskByStep
    | ComponentsStep
    | ClearBorderStep
    | KeepLargeStep
    | FillHoles2DStep
    | ClosingStep,
    Field(discriminator="step"),
]


# --- files and the whole manifest -----------------------------------------


class OnnxFile(_Strict):
    path: str
    sha256: str

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        p = PurePosixPath(value)
        if (p.is_absolute() or ".." in p.parts or "\\" in value or ":" in value or "\0" in value
                or not value.endswith(".onnx")):
            raise ValueError(f"{value!r} must be a relative path to a .onnx file inside the pack")
        return value

    @field_validator("sha256")
    @classmethod
    def _sha(cls, value: str) -> str:
        value = value.lower()
        if not _SHA256_RE.fullmatch(value):
            raise ValueError("must be 64 hexadecimal digits (sha256)")
        return value


class Ensemble(_Strict):
    combine: Literal["mean"] = "mean"  # member outputs are averaged after activation
    weights: list[float] | None = None


class MemoryHint(_Strict):
    """Measured peak memory of one network run per patch voxel (bytes), if known."""

    bytes_per_patch_voxel: float = Field(gt=0)


class LocalizerSpec(_Strict):
    """The first stage of a two-stage model (deepbet's bounding-box network).

    The whole model-space volume, resized to ``shape`` by nearest-exact sampling and
    normalised by ``normalization``, goes through the network in ``file``. Its output
    ``channel`` above ``threshold`` (the largest 26-connected region if
    ``keep_largest_component``) gives a box: along each tensor axis, the planes in which more
    than ``profile_fraction`` of the voxels are inside, scaled back to the full grid and
    grown by ``margin`` of its size on each side (then rounded and clipped to the volume).
    The box, resized to ``crop_shape`` by nearest-exact sampling, is the main network's
    input; its output is resized back into the box, and outside the box every voxel is
    background (channel 0 = 1, the others 0).
    """

    file: str  # one of ``files``; run once, not an ensemble member
    shape: tuple[int, int, int]  # tensor order
    normalization: Normalization
    tensor_name: str | None = None  # its output (default: the first); input as input's
    channels: int = Field(default=2, ge=1, le=512)  # of its output
    channel: int = Field(default=1, ge=0)  # the one that is thresholded
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    keep_largest_component: bool = True
    profile_fraction: float = Field(default=0.02, ge=0.0, lt=1.0)
    margin: float = Field(default=0.1, ge=0.0, le=1.0)
    crop_shape: tuple[int, int, int]  # tensor order

    @model_validator(mode="after")
    def _shapes(self) -> LocalizerSpec:
        if any(n < 1 for n in (*self.shape, *self.crop_shape)):
            raise ValueError("shape and crop_shape entries must be >= 1")
        if self.channel >= self.channels:
            raise ValueError(f"channel {self.channel} is not one of the output's "
                             f"{self.channels} channels")
        if uses_localizer_statistics(self.normalization):
            raise ValueError("the localizer's own normalization cannot reuse localizer "
                             "statistics")
        return self


class Manifest(_Strict):
    schema_version: Literal[1]
    id: str
    name: str = Field(min_length=1)
    version: str
    authors: list[str] = Field(min_length=1)
    license: str = Field(min_length=1)
    citation: str = ""
    intended_use: str = Field(min_length=1)
    limitations: str = Field(min_length=1)
    research_use_notice: str = Field(min_length=1)
    model_card: str = "MODEL_CARD.md"
    modality: list[str] = Field(min_length=1)  # DICOM Modality values, e.g. ["CT"]
    body_part: list[str] = Field(default_factory=list)  # e.g. ["CHEST", "LUNG"]
    min_spacing_mm: float | None = Field(default=None, gt=0)
    max_spacing_mm: float | None = Field(default=None, gt=0)
    min_slices: int = Field(default=1, ge=1)
    # Words an MR series' description, protocol or sequence name is expected to contain
    # (case-insensitive, e.g. "T1", "MPRAGE"): a series naming none of them is still offered,
    # with a warning, because those fields are free text.
    sequence_hints: list[str] = Field(default_factory=list)
    input: InputSpec
    tiling: TilingSpec
    output: OutputSpec
    postprocessing: list[PostStep] = Field(default_factory=list)
    files: list[OnnxFile] = Field(min_length=1)
    ensemble: Ensemble | None = None
    localizer: LocalizerSpec | None = None
    memory: MemoryHint | None = None
    # A demonstration, not a model: Lucida runs it only on its synthetic demo study
    # (see demo_only_problem); never the default choice, never scored as a real result.
    demo_only: bool = False

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not is_pack_id(value):
            raise ValueError(f"{value!r} is not a pack id: it must be {_ID_RULE}")
        return value

    @field_validator("model_card")
    @classmethod
    def _card(cls, value: str) -> str:
        p = PurePosixPath(value)
        if (not value or p.is_absolute() or ".." in p.parts or "\\" in value or ":" in value
                or "\0" in value):
            raise ValueError(f"{value!r} must be a relative path to a file inside the pack")
        return value

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not _SEMVER_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not a semantic version such as 1.2.0")
        return value

    @field_validator("modality", "body_part")
    @classmethod
    def _upper(cls, value: list[str]) -> list[str]:
        return [v.strip().upper() for v in value]

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        paths = [f.path for f in self.files]
        if len(set(paths)) != len(paths):
            raise ValueError("files lists the same path twice")
        if self.localizer is not None and self.localizer.file not in paths:
            raise ValueError(f"localizer.file {self.localizer.file!r} is not one of files")
        members = self.member_files
        if not members:
            raise ValueError("files holds no network besides the localizer")
        if len(members) > 1 and self.ensemble is None:
            raise ValueError("several files need an 'ensemble' entry saying how to combine them")
        if (
            self.ensemble is not None
            and self.ensemble.weights is not None
            and len(self.ensemble.weights) != len(members)
        ):
            raise ValueError("ensemble.weights needs one weight per file")
        if uses_localizer_statistics(self.input.normalization) and self.localizer is None:
            raise ValueError("input.normalization uses localizer statistics but the pack has "
                             "no localizer")
        if self.input.crop_to is not None and (self.localizer is not None
                                               or self.output.kind == "detections"):
            raise ValueError("input.crop_to works with segmentation outputs, without a "
                             "localizer (which crops by itself)")
        if self.localizer is not None:
            if self.tiling.mode != "whole":
                raise ValueError("a localizer needs 'whole' tiling (the main network sees the "
                                 "resized box in one run)")
            if self.output.kind not in ("segmentation_logits", "probabilities"):
                raise ValueError("a localizer works with segmentation_logits or probabilities "
                                 "outputs")
        if self.output.kind == "detections":
            if self.tiling.mode == "valid":
                raise ValueError("detections use 'sliding' or 'whole' tiling, not 'valid'")
            other = [s.step for s in self.postprocessing if s.step != "mask_by"]
            if other:
                raise ValueError(f"detections take only 'mask_by' post-processing, not "
                                 f"{', '.join(other)}")
            return self
        steps = [s.step for s in self.postprocessing]
        if self.output.kind == "label_index":
            if self.tiling.mode != "whole":
                raise ValueError("a label_index output needs 'whole' tiling (class indices "
                                 "cannot be blended across tiles)")
            if "argmax" in steps or "threshold" in steps:
                raise ValueError("a label_index output is already labels: no argmax or "
                                 "threshold step")
        if "argmax" in steps and "threshold" in steps:
            raise ValueError("postprocessing uses both argmax and threshold; choose one")
        return self

    @property
    def member_files(self) -> list[OnnxFile]:
        """The networks whose outputs make the result (every file but the localizer)."""
        loc = self.localizer.file if self.localizer is not None else None
        return [f for f in self.files if f.path != loc]

    @property
    def label_steps(self) -> list[str]:
        return [s.step for s in self.postprocessing]


def is_pack_id(value: str) -> bool:
    """The manifest's ``id`` rule; an id is also the pack's folder name in the library."""
    return (_ID_RE.fullmatch(value) is not None and not value.endswith(".")
            and value.split(".", 1)[0] not in _WINDOWS_DEVICES)


def validate_pack_id(value: str) -> str:
    """``value`` if it is a valid pack id, else ModelPackError saying what an id is."""
    if not is_pack_id(value):
        raise ModelPackError(
            f"{value!r} is not a model pack id: an id is {_ID_RULE} (see `lucida models list`); "
            "a path is not accepted here"
        )
    return value


def demo_only_problem(manifest: Manifest, series_uid: str) -> str | None:
    """Why a ``demo_only`` pack must not run on this series; None when it may.

    Only Lucida's synthetic demo series qualifies, recognised by its fixed UID, which
    (unlike patient identity) also reaches the worker process.
    """
    if not manifest.demo_only or series_uid == DEMO_SERIES_UID:
        return None
    return (
        f"{manifest.name} ({manifest.id}) is a rules-based demonstration, not a model "
        "(manifest.json: demo_only), made only for Lucida's synthetic demo study; this series "
        "is not the demo study. Choose a trained model pack for real images "
        "(`lucida models list`)"
    )


def _loc(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts) or "(top level)"


def format_validation_error(exc: ValidationError, source: str = "manifest.json") -> str:
    """``manifest.json: input.normalization.hu_window.low: ...`` lines, one per problem."""
    lines = []
    for err in exc.errors():
        loc = _loc(tuple(err["loc"]))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (not part of the manifest schema; check the spelling)"
        elif err["type"] == "missing":
            msg = "required field is missing"
        msg = msg.removeprefix("Value error, ")
        lines.append(f"{source}: {loc}: {msg}")
    return "\n".join(lines)


def parse_manifest(data: bytes | str | dict[str, Any], source: str = "manifest.json") -> Manifest:
    """Validate a manifest; raises ModelPackError naming each offending field."""
    if isinstance(data, bytes | str):
        try:
            obj = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelPackError(f"{source}: not valid JSON ({exc})") from exc
    else:
        obj = data
    if not isinstance(obj, dict):
        raise ModelPackError(f"{source}: must be a JSON object")
    version = obj.get("schema_version")
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise ModelPackError(
            f"{source}: schema_version {version} is newer than this Lucida understands "
            f"({SCHEMA_VERSION}); update Lucida to use this pack"
        )
    try:
        return Manifest.model_validate(obj)
    except ValidationError as exc:
        raise ModelPackError(format_validation_error(exc, source)) from exc
