"""The sign-off HTML report: one self-contained file (key images embedded as PNG).

It goes to the PACS / the record, so patient identity is always included (the GUI's
"hide identity" toggle is for the screen only). Every text is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

import imagecodecs
import numpy as np
import numpy.typing as npt
from scipy import ndimage

from core.atomic import write_text

RESEARCH_ONLY = "Research use only. Not for diagnostic use."


@dataclass(frozen=True)
class ReportFinding:
    tracking_id: str
    label_name: str
    decision: str
    algorithm_type: str
    slice_k: int
    centroid_lps: tuple[float, float, float]
    longest_diameter_mm: float
    volume_mm3: float
    score: float | None
    reviewer: str
    decided_at: str
    reason: str = ""
    key_image_png: bytes = b""
    #: The slice as the Findings panel and the axial view number it ("22/120"); the key
    #: image is the source image through the centroid.
    slice_label: str = ""


@dataclass(frozen=True)
class ReportData:
    patient: dict[str, str]  # name, id, birth date, sex
    study: dict[str, str]  # date, description, accession, study uid, series
    model: dict[str, str]  # name, version, pack id, sha256, provider
    model_card: str  # the summary paragraphs (plain text)
    findings: list[ReportFinding]
    reviewer: str
    signed_off_at: str
    audit_head_hash: str
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256
    rejected: int = 0


def card_summary(markdown: str, paragraphs: int = 2) -> str:
    """The model card's first paragraphs of prose (headings and lists left out)."""
    out: list[str] = []
    for block in markdown.replace("\r\n", "\n").split("\n\n"):
        lines = [ln.strip() for ln in block.strip().splitlines()]
        if not lines or lines[0].startswith(("#", "- ", "* ", "|", "```", ">")):
            continue
        # Plain text: emphasis and code marks dropped (the report escapes everything).
        out.append(" ".join(lines).replace("**", "").replace("`", ""))
        if len(out) == paragraphs:
            break
    return "\n\n".join(out)


def key_image_png(plane: npt.NDArray[np.floating] | npt.NDArray[np.integer],
                  mask: npt.NDArray[np.bool_], color: tuple[int, int, int], *,
                  window: tuple[float, float] = (-600.0, 1500.0)) -> bytes:
    """One slice (rows j, columns i, as the source image shows it) windowed to grey,
    with the finding's outline in its colour."""
    level, width = window
    grey = np.clip((np.asarray(plane, np.float32) - (level - width / 2)) / width, 0.0, 1.0)
    rgb = np.repeat((grey * 255).astype(np.uint8)[..., None], 3, axis=2)
    outline = mask & ~ndimage.binary_erosion(mask)
    rgb[outline] = color
    return bytes(imagecodecs.png_encode(rgb))


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _row(f: ReportFinding) -> str:
    x, y, z = f.centroid_lps
    score = "" if f.score is None else f"{f.score:.2f}"
    reason = f"<br><small>{_e(f.reason)}</small>" if f.reason else ""
    image = ""
    if f.key_image_png:
        data = base64.b64encode(f.key_image_png).decode("ascii")
        image = (f'<img alt="key image of {_e(f.tracking_id)}" width="256" '
                 f'src="data:image/png;base64,{data}">')
    return (f"<tr><td>{_e(f.tracking_id)}</td><td>{_e(f.label_name)}</td>"
            f"<td>{_e(f.decision)}{reason}</td><td>{_e(f.algorithm_type)}</td>"
            f"<td>{_e(f.slice_label or str(f.slice_k + 1))}</td>"
            f"<td>{x:.1f}, {y:.1f}, {z:.1f}</td>"
            f"<td>{f.longest_diameter_mm:.1f}</td><td>{f.volume_mm3:.0f}</td><td>{score}</td>"
            f"<td>{_e(f.reviewer)}<br><small>{_e(f.decided_at)}</small></td>"
            f"<td>{image}</td></tr>")


def _pairs(items: dict[str, str]) -> str:
    return "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in items.items())


def render_report(data: ReportData) -> str:
    rows = "\n".join(_row(f) for f in data.findings)
    card = "".join(f"<p>{_e(p)}</p>" for p in data.model_card.split("\n\n") if p.strip())
    files = "".join(f"<tr><td>{_e(n)}</td><td><code>{_e(h)}</code></td></tr>"
                    for n, h in data.files.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Lucida sign-off report</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
th, td {{ border: 1px solid #999; padding: 4px 8px; text-align: left; vertical-align: top; }}
.banner {{ background: #fdd; border: 2px solid #c00; padding: 0.5em; font-weight: bold; }}
code {{ word-break: break-all; }}
</style></head><body>
<p class="banner">{_e(RESEARCH_ONLY)}</p>
<h1>AI findings review — sign-off report</h1>
<h2>Patient and study</h2>
<table>{_pairs(data.patient)}{_pairs(data.study)}</table>
<h2>Model</h2>
<table>{_pairs(data.model)}</table>
{card}
<h2>Kept findings ({len(data.findings)}; {data.rejected} rejected, not reported)</h2>
<table>
<tr><th>ID</th><th>Label</th><th>Decision</th><th>Segment algorithm</th><th>Slice</th>
<th>Centroid (LPS mm)</th><th>Longest diameter (mm)</th><th>Volume (mm³)</th><th>Score</th>
<th>Reviewer</th><th>Key image</th></tr>
{rows}
</table>
<h2>Sign-off</h2>
<table>{_pairs({"Signed off by": data.reviewer, "Signed off at": data.signed_off_at,
                "Audit log head hash (before this export)": data.audit_head_hash})}</table>
<h2>Exported objects</h2>
<table><tr><th>File</th><th>SHA-256</th></tr>{files}</table>
<p class="banner">{_e(RESEARCH_ONLY)}</p>
</body></html>
"""


def write_report(path: Path, data: ReportData) -> Path:
    write_text(path, render_report(data))
    return path
