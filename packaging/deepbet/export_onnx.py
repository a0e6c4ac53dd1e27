"""Export deepbet 1.0.2's two TorchScript networks to ONNX and prove the files agree.

Runs in a side environment with torch 2.13.0 (see README.md here); torch is never a
runtime dependency of Lucida. Usage::

    .venv-torch/bin/python packaging/deepbet/export_onnx.py \\
        --wheel deepbet-1.0.2-py3-none-any.whl --out artifacts/deepbet-onnx [--float16] [--quick]

The .pt files are read straight out of the wheel (both the wheel and each .pt are
checked against recorded sha256s), exported with the TorchScript-based exporter
(``dynamo=False``; torch 2.13 still accepts a ScriptModule there), checked with
onnx.checker, and run with onnxruntime (CPU) against TorchScript on a seeded random input
and, unless --quick, on the conformed T1 from ../shared prepared the deepbet way.
Exit 1 when a float32 export's probabilities differ from TorchScript's by more than 1e-4
on the T1, or, on seeded white noise (where float32 itself is ill-conditioned:
TorchScript's float32 output is ~6e-4 from its own float64 output), when the ONNX output
is more than twice as far from TorchScript's float64 output as TorchScript's float32 is.
The InstanceNormalization nodes are decomposed first (instance_norm.py): onnxruntime's
own kernel was 1.1e-2 off on the T1.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import time
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import deepbet_inputs
import numpy as np
import onnx
import onnxruntime as ort
import torch
from fp16_weights import store_weights_as_float16
from instance_norm import decompose_instance_norm

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))
from core.atomic import write_bytes, write_text  # noqa: E402  (needs REPO_ROOT on sys.path)

WHEEL_NAME = "deepbet-1.0.2-py3-none-any.whl"
WHEEL_SHA256 = "1999e2ea00ec48f6233b95b96f3901a962d3f70431c63aeb985e8a49a198473c"
# member in the wheel -> (output stem, sha256, fixed input shape)
NETWORKS: dict[str, tuple[str, str, tuple[int, ...]]] = {
    "data/models/bbox_model.pt": (
        "deepbet_bbox", "39a7b2b5f799faa1391ea97bfcdc0b9299f20d84f2316a4ff8918dc4685e40aa",
        (1, 1, 128, 128, 128)),
    "data/models/model.pt": (
        "deepbet_brain", "de8ee7c69654d0dd3935dc4a5d84571d8ecf4637a6bfc01df399c4c2bc86e0fd",
        (1, 1, 256, 256, 256)),
}
OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"
FP32_TOLERANCE = 1e-4
# On white noise float32 itself is ill-conditioned: TorchScript's own float32 output is
# ~6e-4 from its float64 output. There the ONNX file must be no further from float64 than
# this many times TorchScript's float32 error.
NOISE_FACTOR = 2.0
SEED = 20240516
DEFAULT_T1 = REPO_ROOT.parent / "shared/models-src/data-mr/brain-t1-conformed-256.nii.gz"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


LICENSE_MEMBER = "deepbet-1.0.2.dist-info/LICENSE"


def read_networks(wheel: Path) -> dict[str, bytes]:
    """The two .pt files' bytes (and the licence), after checking the wheel's and each
    network's sha256."""
    data = wheel.read_bytes()
    if sha256(data) != WHEEL_SHA256:
        raise SystemExit(f"{wheel}: sha256 {sha256(data)} is not deepbet 1.0.2's {WHEEL_SHA256}")
    out: dict[str, bytes] = {}
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for member, (_, expected, _) in NETWORKS.items():
            blob = zf.read(member)
            if sha256(blob) != expected:
                raise SystemExit(f"{member}: sha256 {sha256(blob)} is not the recorded {expected}")
            out[member] = blob
        out[LICENSE_MEMBER] = zf.read(LICENSE_MEMBER)  # MIT: it travels with the weights
    return out


def export(module: torch.jit.ScriptModule, shape: tuple[int, ...]) -> onnx.ModelProto:
    """The ONNX graph of ``module``, InstanceNormalization decomposed (see instance_norm.py)."""
    buf = io.BytesIO()
    # The legacy exporter: torch.export (dynamo=True) cannot trace a ScriptModule.
    torch.onnx.export(module, (torch.zeros(shape),), buf, input_names=[INPUT_NAME],
                      output_names=[OUTPUT_NAME], opset_version=OPSET, dynamo=False,
                      do_constant_folding=True)
    model, count = decompose_instance_norm(onnx.load_from_string(buf.getvalue()))
    if count == 0:
        raise SystemExit("the export has no InstanceNormalization: not deepbet's LinkNet3d?")
    onnx.checker.check_model(model, full_check=True)
    return model


def io_shapes(model: onnx.ModelProto) -> dict[str, list[int | str]]:
    def dims(value: onnx.ValueInfoProto) -> list[int | str]:
        return [d.dim_value if d.HasField("dim_value") else d.dim_param
                for d in value.type.tensor_type.shape.dim]
    return {v.name: dims(v) for v in list(model.graph.input) + list(model.graph.output)}


def compare(reference: np.ndarray, got: np.ndarray) -> dict[str, float | int]:
    """Max abs difference of the probabilities and voxels whose brain decision flips."""
    return {"max_abs_diff": float(np.abs(reference - got).max()),
            "decision_diff_voxels": int(((reference[0, 1] > 0.5) != (got[0, 1] > 0.5)).sum()),
            "brain_voxels_reference": int((reference[0, 1] > 0.5).sum())}


class Net:
    """One network: its TorchScript module and its exported ONNX variants' sessions."""

    def __init__(self, stem: str, blob: bytes, variants: dict[str, bytes]) -> None:
        self.stem, self.blob = stem, blob
        self.module = torch.jit.load(io.BytesIO(blob), map_location="cpu").eval()
        self.sessions = {name: ort.InferenceSession(data, providers=["CPUExecutionProvider"])
                         for name, data in variants.items()}

    def check(self, label: str, x: torch.Tensor,
              float64: bool = False) -> tuple[np.ndarray, dict[str, Any]]:
        """Each ONNX variant against TorchScript (and, with float64, against its float64 run)."""
        t0 = time.perf_counter()
        with torch.no_grad():
            reference: np.ndarray = self.module(x).numpy()
        report: dict[str, Any] = {"torchscript_s": round(time.perf_counter() - t0, 2)}
        exact = None
        if float64:
            # A separate copy: .double() converts a module in place.
            module64 = torch.jit.load(io.BytesIO(self.blob), map_location="cpu").eval().double()
            with torch.no_grad():
                exact = module64(x.double()).numpy()
            del module64
            report["torchscript_fp32_vs_float64"] = float(np.abs(reference - exact).max())
        for name, session in self.sessions.items():
            t0 = time.perf_counter()
            got = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]
            report[name] = compare(reference, got) | {
                "onnxruntime_s": round(time.perf_counter() - t0, 2)}
            if exact is not None:
                report[name]["max_abs_diff_vs_float64"] = float(np.abs(got - exact).max())
            print(f"{self.stem:14s} {label:6s} {name:6s} max|dp| {report[name]['max_abs_diff']:.3e}"
                  f"  p>0.5 flips {report[name]['decision_diff_voxels']}"
                  f" / {report[name]['brain_voxels_reference']}", flush=True)
        if exact is not None:
            print(f"{self.stem:14s} {label:6s} float64: TorchScript fp32 "
                  f"{report['torchscript_fp32_vs_float64']:.3e}, ONNX fp32 "
                  f"{report['fp32']['max_abs_diff_vs_float64']:.3e}", flush=True)
        return reference, report


def gate(checks: dict[str, Any]) -> list[str]:
    """Why the float32 export fails, if it does (see the module docstring)."""
    failures = []
    for stem, report in checks.get("conformed_t1", {}).items():
        # fp16w too: deepbet's weights are exactly representable in float16 (EXPORT.json's
        # fp16_weights errors are 0), so storing them as float16 must cost nothing.
        for variant in ("fp32", "fp16w"):
            if (isinstance(report, dict) and variant in report
                    and report[variant]["max_abs_diff"] > FP32_TOLERANCE):
                failures.append(f"{stem} {variant} on the T1: max|dp| "
                                f"{report[variant]['max_abs_diff']:.3e}")
    for stem, report in checks.get("random", {}).items():
        allowed = max(FP32_TOLERANCE, NOISE_FACTOR * report["torchscript_fp32_vs_float64"])
        if report["fp32"]["max_abs_diff_vs_float64"] > allowed:
            failures.append(f"{stem} on noise: {report['fp32']['max_abs_diff_vs_float64']:.3e} "
                            f"from float64 (allowed {allowed:.3e})")
    return failures


def random_input(shape: tuple[int, ...]) -> torch.Tensor:
    """Seeded noise with the spread of a normalised image (mean 0.449, std 0.226)."""
    rng = np.random.default_rng(SEED)
    return torch.from_numpy((0.449 + 0.226 * rng.standard_normal(shape)).astype(np.float32))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", type=Path, required=True, help=WHEEL_NAME)
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--float16", action="store_true",
                        help="also write *_fp16w.onnx (weights stored float16, compute float32)")
    parser.add_argument("--quick", action="store_true",
                        help="check on the random input only (skip the conformed T1)")
    parser.add_argument("--t1", type=Path, default=DEFAULT_T1, help="realistic input (NIfTI)")
    args = parser.parse_args(argv)
    torch.manual_seed(SEED)

    blobs = read_networks(args.wheel)
    args.out.mkdir(parents=True, exist_ok=True)
    write_bytes(args.out / "LICENSE", blobs.pop(LICENSE_MEMBER))
    record: dict[str, Any] = {
        "wheel": {"name": args.wheel.name, "sha256": WHEEL_SHA256},
        "torchscript": {m: sha256(b) for m, b in blobs.items()},
        "versions": {"torch": torch.__version__, "onnx": onnx.__version__,
                     "onnxruntime": ort.__version__, "python": sys.version.split()[0]},
        "exporter": "torch.onnx.export(dynamo=False) (TorchScript-based)",
        "graph_rewrites": ["InstanceNormalization -> two-pass per-axis ReduceMean decomposition "
                           "(onnxruntime's own CPU kernel was 1.1e-2 off on the T1)"],
        "opset": OPSET, "input_name": INPUT_NAME, "output_name": OUTPUT_NAME,
        "output": "softmax probabilities (N,2,D,H,W), channel 1 = brain; axes = RAS voxel i,j,k",
        "fp32_tolerance": FP32_TOLERANCE, "seed": SEED, "files": {}, "checks": {},
    }
    nets: dict[str, Net] = {}
    for member, (stem, _, shape) in NETWORKS.items():
        module = torch.jit.load(io.BytesIO(blobs[member]), map_location="cpu").eval()
        model = export(module, shape)
        del module
        variants = {"fp32": model.SerializeToString()}
        fp16_report = None
        if args.float16:
            half, fp16_report = store_weights_as_float16(model)
            onnx.checker.check_model(half, full_check=True)
            variants["fp16w"] = half.SerializeToString()
        for name, blob in variants.items():
            filename = f"{stem}.onnx" if name == "fp32" else f"{stem}_fp16w.onnx"
            write_bytes(args.out / filename, blob)
            record["files"][filename] = {
                "network": member, "variant": name, "sha256": sha256(blob), "bytes": len(blob),
                "io_shapes": io_shapes(onnx.load_from_string(blob))}
            if name == "fp16w" and fp16_report is not None:
                record["files"][filename]["fp16_weights"] = asdict(fp16_report)
            print(f"wrote {args.out / filename} ({len(blob):,} B)", flush=True)
        nets[stem] = Net(stem, blobs[member], variants)

    checks: dict[str, Any] = record["checks"]
    for stem, net in nets.items():
        shape = next(s for st, _, s in NETWORKS.values() if st == stem)
        checks.setdefault("random", {})[stem] = net.check("random", random_input(shape),
                                                   float64=True)[1]
    if not args.quick:
        if not args.t1.is_file():
            raise SystemExit(f"{args.t1} is absent: pass --t1 or --quick")
        volume = deepbet_inputs.load_ras(args.t1)
        x_small, low, high = deepbet_inputs.bbox_input(volume)
        checks["conformed_t1"] = {"file": args.t1.name}
        bbox_probs, checks["conformed_t1"]["deepbet_bbox"] = nets["deepbet_bbox"].check(
            "t1", x_small)
        x_main = deepbet_inputs.main_input(volume, torch.from_numpy(bbox_probs), low, high)
        checks["conformed_t1"]["deepbet_brain"] = nets["deepbet_brain"].check("t1", x_main)[1]

    record["fp32_max_abs_diff"] = {case: {stem: r["fp32"]["max_abs_diff"]
                                          for stem, r in reports.items() if isinstance(r, dict)}
                                   for case, reports in checks.items()}
    failures = gate(checks)
    record["passed"] = not failures
    write_text(args.out / "EXPORT.json", json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out / 'EXPORT.json'}")
    if failures:
        print("FAIL: the float32 export differs from TorchScript: " + "; ".join(failures),
              file=sys.stderr)
        return 1
    print("PASS: float32 ONNX agrees with TorchScript")
    return 0


if __name__ == "__main__":
    sys.exit(main())
