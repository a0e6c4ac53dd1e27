"""Benchmark: Lucida's inference pipeline vs PyTorch eager + MONAI sliding_window_inference.

One 3-D U-Net (MONAI ``UNet``, 1–5 M parameters, random but fixed weights) is
built and exported to ONNX here; a 256×256×160 volume is segmented with the
same patch size (96³), overlap (0.25), Gaussian blending, tile batch and thread
count by

* Lucida: ``inference.run`` on a model pack (ONNX Runtime, CPU), the whole
  pipeline: normalisation, tiling, stitching, softmax, argmax, heat map,
  results back on the volume grid;
* reference: PyTorch eager + ``monai.inferers.sliding_window_inference``
  followed by softmax and argmax.

Both clocks start after the libraries are imported (torch and monai; onnx and
onnxruntime, which ``inference.run`` would otherwise import on first use).
Lucida's clock still includes opening the pack, checking its sha256, the graph
rewrites and creating the session; MONAI's excludes building the network and
loading its weights.

Each side runs in its own subprocess so peak RSS (VmHWM from /proc/self/status,
imports included) does not mix. Needs the ``bench`` extra (torch==2.13.0, monai)::

    .venv/bin/python bench/inference.py [--threads 2] [--batch 1] [--repeat 3]

With ``--repeat N`` the two sides run N times, alternating (Lucida, MONAI,
Lucida, ...), each in a fresh process; the ratios use the medians, and every
run is printed, because this shared 2-core machine is noisy.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import peak_rss_mb  # the script's folder is on sys.path

os.environ.update(ORT_DISABLE_TELEMETRY="1", ORT_TELEMETRY_DISABLED="1")
REPO = Path(__file__).resolve().parent.parent
SHAPE_KJI = (160, 256, 256)
PATCH = (96, 96, 96)
OVERLAP = 0.25


def _unet() -> object:
    from monai.networks.nets import UNet

    return UNet(spatial_dims=3, in_channels=1, out_channels=2,
                channels=(16, 32, 64, 128, 256), strides=(2, 2, 2, 2), num_res_units=1)


def _volume() -> object:
    import numpy as np

    rng = np.random.default_rng(7)
    base = rng.normal(size=(SHAPE_KJI[0] // 8, SHAPE_KJI[1] // 8, SHAPE_KJI[2] // 8))
    from scipy import ndimage

    vol = ndimage.zoom(base, 8, order=1).astype(np.float32)
    vol += 0.1 * rng.normal(size=SHAPE_KJI).astype(np.float32)
    return vol


def prepare(work: Path, batch: int) -> None:
    """Build the network, export it to ONNX, write the volume and a Lucida pack."""
    import numpy as np
    import torch

    torch.manual_seed(0)
    net = _unet()
    net.eval()  # type: ignore[attr-defined]
    params = sum(p.numel() for p in net.parameters())  # type: ignore[attr-defined]
    torch.save(net.state_dict(), work / "unet.pt")  # type: ignore[attr-defined]
    onnx_path = work / "pack" / "model.onnx"
    onnx_path.parent.mkdir(parents=True)
    dummy = torch.zeros((1, 1, *PATCH))
    torch.onnx.export(net, (dummy,), str(onnx_path), input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, opset_version=17,
                      dynamo=False)
    np.save(work / "volume.npy", _volume())
    sha = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    manifest = {
        "schema_version": 1, "id": "bench-unet", "name": "Benchmark U-Net (random weights)",
        "version": "0.0.1", "authors": ["bench"], "license": "Apache-2.0",
        "intended_use": "benchmark", "limitations": "random weights",
        "research_use_notice": "benchmark only", "modality": ["CT"],
        "input": {"orientation": "LPS", "axis_order": "kji", "spacing_mm": "native",
                  "normalization": {"kind": "none"}},
        "tiling": {"mode": "sliding", "patch_size": list(PATCH), "overlap": OVERLAP,
                   "blending": "gaussian", "sigma_scale": 0.125, "batch_size": batch},
        "output": {"kind": "segmentation_logits", "activation": "softmax", "channels": 2,
                   "labels": [{"value": 1, "name": "foreground"}],
                   "heatmap_channel": "foreground"},
        "postprocessing": [{"step": "argmax"}],
        "files": [{"path": "model.onnx", "sha256": sha}],
    }
    (work / "pack" / "manifest.json").write_text(json.dumps(manifest))
    (work / "pack" / "MODEL_CARD.md").write_text("# bench\n")
    (work / "params.txt").write_text(str(params))


def run_lucida(work: Path, threads: int) -> dict[str, float]:
    import numpy as np

    sys.path.insert(0, str(REPO))
    from core.volume import Volume
    from inference import rewrite, run, runtime  # noqa: F401  (imports onnx, onnxruntime)

    array = np.load(work / "volume.npy")
    # Axial grid: k → S (z), j → P (y), i → L (x), so the LPS/kji model space is the
    # array as is and both sides feed the network the same tensors.
    axial = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=float)
    vol = Volume(array, axial, modality="CT")
    base = peak_rss_mb()
    t0 = time.perf_counter()
    result = run(vol, work / "pack", threads=threads)
    elapsed = time.perf_counter() - t0
    np.save(work / "lucida_labels.npy", result.label_map.array)
    assert result.heatmap is not None
    np.save(work / "lucida_fg.npy", result.heatmap.array)
    return {"seconds": elapsed, "peak_rss_mb": peak_rss_mb(), "rss_before_mb": base,
            "foreground": float(result.label_map.array.mean()),
            "network_s": result.provenance["timings_s"]["network"]}


def run_monai(work: Path, threads: int, batch: int) -> dict[str, float]:
    import numpy as np
    import torch
    from monai.inferers import sliding_window_inference

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    net = _unet()
    net.load_state_dict(torch.load(work / "unet.pt"))  # type: ignore[attr-defined]
    net.eval()  # type: ignore[attr-defined]
    array = np.load(work / "volume.npy")
    base = peak_rss_mb()
    t0 = time.perf_counter()
    with torch.inference_mode():
        x = torch.from_numpy(array)[None, None]
        logits = sliding_window_inference(x, roi_size=PATCH, sw_batch_size=batch,
                                          predictor=net, overlap=OVERLAP, mode="gaussian",
                                          sigma_scale=0.125)
        probs = torch.softmax(logits, dim=1)
        labels = torch.argmax(probs, dim=1)[0].to(torch.uint8).numpy()
    elapsed = time.perf_counter() - t0
    np.save(work / "monai_labels.npy", labels)
    np.save(work / "monai_fg.npy", probs[0, 1].numpy())
    return {"seconds": elapsed, "peak_rss_mb": peak_rss_mb(), "rss_before_mb": base,
            "foreground": float(labels.mean())}


def _median_run(rs: list[dict[str, float]]) -> dict[str, float]:
    """Median time and median peak RSS over repeated runs."""
    import statistics

    return {"seconds": statistics.median(r["seconds"] for r in rs),
            "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in rs)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1, help="tiles per network call (both sides)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per side (medians compared)")
    ap.add_argument("--only", choices=["lucida", "monai"], default=None)
    ap.add_argument("--_child", choices=["lucida", "monai"], default=None, help=argparse.SUPPRESS)
    ap.add_argument("--_work", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._child:
        work = Path(args._work)
        out = (run_lucida(work, args.threads) if args._child == "lucida"
               else run_monai(work, args.threads, args.batch))
        print(json.dumps(out))
        return 0

    with tempfile.TemporaryDirectory(prefix="lucida-bench-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        prepare(work, args.batch)
        params = int((work / "params.txt").read_text())
        print(f"model: MONAI UNet 3-D, {params / 1e6:.2f} M parameters (exported to ONNX in "
              f"{time.perf_counter() - t0:.1f} s); volume {SHAPE_KJI} float32; patch {PATCH}, "
              f"overlap {OVERLAP}, gaussian, tile batch {args.batch}, {args.threads} threads")
        runs: dict[str, list[dict[str, float]]] = {"lucida": [], "monai": []}
        for _ in range(max(1, args.repeat)):
            for side in ("lucida", "monai"):
                if args.only and side != args.only:
                    continue
                proc = subprocess.run(
                    [sys.executable, __file__, "--_child", side, "--_work", str(work),
                     "--threads", str(args.threads), "--batch", str(args.batch)],
                    capture_output=True, text=True, cwd=REPO)
                if proc.returncode != 0:
                    print(proc.stderr, file=sys.stderr)
                    return 1
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                runs[side].append(r)
                name = ("Lucida (onnxruntime)" if side == "lucida"
                        else "PyTorch eager + MONAI SWI")
                print(f"{name:28} {r['seconds']:7.2f} s   peak RSS {r['peak_rss_mb']:7.0f} MB "
                      f"(after imports/setup {r['rss_before_mb']:.0f} MB)", flush=True)
        results = {side: _median_run(rs) for side, rs in runs.items() if rs}
        if args.repeat > 1:
            for side, r in results.items():
                print(f"median of {len(runs[side])} {side:7}  {r['seconds']:7.2f} s   "
                      f"peak RSS {r['peak_rss_mb']:7.0f} MB")
        if len(results) == 2:
            import numpy as np

            a = np.load(work / "lucida_labels.npy")
            b = np.load(work / "monai_labels.npy")
            agree = float((a == b).mean())
            lu, mo = results["lucida"], results["monai"]
            print(f"speed-up (MONAI time / Lucida time): {mo['seconds'] / lu['seconds']:.2f}x  "
                  f"(target >= 3x)")
            print(f"peak memory (Lucida / MONAI): {lu['peak_rss_mb'] / mo['peak_rss_mb']:.2f}  "
                  f"(target <= 0.6)")
            pa = np.load(work / "lucida_fg.npy")
            pb = np.load(work / "monai_fg.npy")
            diff = np.abs(pa - pb)
            clear = np.abs(pb - 0.5) > 0.02
            print(f"foreground probability |Lucida - MONAI|: mean {diff.mean():.2e}, max "
                  f"{diff.max():.2e}; label agreement {agree * 100:.3f} % of voxels "
                  f"({float((a == b)[clear].mean()) * 100:.3f} % where MONAI's p is not "
                  "within 0.02 of 0.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
