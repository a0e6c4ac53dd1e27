"""blast-ct 2.1.0's own inference (PyTorch DeepMedic, CPU) with the staged V1 members.

    .bench-venvs/blast-ct/bin/python bench/_author_blast_ct.py --input CT.nii.gz \
        --weights .../blast-ct/weights_v1 --members 6 --out DIR --threads 2

What ``blast-ct --input IN --output OUT --ensemble --device cpu`` does (blast_ct/console_tool.py),
step for step with the authors' functions: their config (``assets.get_config_path``, bundled in
the wheel), ``read_config.get_model``, ``get_test_loader`` (reorient, 1 mm resampling, HU
window, 110^3 patches on the 30^3 output grid, CPU batch 32 as the CLI sets it),
``NiftiPatchSaver`` (stitching, labels back onto the input grid) and
``ModelInferenceEnsemble`` (mean of member softmax). The one change: the weight paths. The CLI
calls ``assets.get_model_paths(12)``, which downloads the V2 ``.torch_model`` files; here the
staged V1 ``model_{1..N}.pt`` are passed instead, and any network access raises.

Timed: everything from building the model to the written label NIfTI. Not timed (after the
peak RSS is read): the ensemble's stitched probabilities, teed to a raw file while the saver
ran, are reconstructed with the authors' ``reconstruct_image`` and resampled onto the input
grid (linear, as Lucida's heat map) as ``1 - p(background)`` for the agreement figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from _author_common import emit, forbid_network, peak_rss_mb, torch_threads


class _TeeProbs:
    """The authors' saver, plus each batch's ensemble probabilities appended to a file."""

    def __init__(self, saver: Any, path: Path) -> None:
        self.saver = saver
        self.fh = path.open("wb")
        self.count = 0

    def __call__(self, state: dict[str, Any]) -> Any:
        probs = state["prob"].detach().cpu().numpy().astype("float32")
        self.fh.write(probs.tobytes())
        self.count += probs.shape[0]
        return self.saver(state)


def _heat_on_input(out: Path, tee: _TeeProbs, dataset: Any, input_path: str) -> None:
    import numpy as np
    import SimpleITK as sitk
    from blast_ct.nifti.rescale import create_reference_reoriented_image
    from blast_ct.nifti.savers import reconstruct_image

    target_shape, centers = dataset.image_mapping[0]
    patch = tuple(dataset.patch_sampler.target_patch_size)
    raw = np.fromfile(out / "probs.raw", dtype=np.float32).reshape(tee.count, -1, *patch)
    probs = reconstruct_image(list(raw), target_shape, centers, patch)  # (z, y, x, C)
    heat = (1.0 - probs[..., 0]).astype(np.float32)
    input_image = sitk.ReadImage(input_path)
    image = sitk.GetImageFromArray(heat)
    reference = create_reference_reoriented_image(input_image)  # as their save_image
    image.SetOrigin(reference.GetOrigin())
    image.SetDirection(reference.GetDirection())
    image.SetSpacing(dataset.resolution)
    image = sitk.Resample(image, input_image, sitk.Transform(), sitk.sitkLinear, 0.0)
    np.save(out / "authors_heat.npy", sitk.GetArrayFromImage(image).astype(np.float32))
    (out / "probs.raw").unlink()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--members", type=int, default=6)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, required=True)
    args = ap.parse_args()
    forbid_network()
    torch_threads(args.threads)

    import pandas as pd
    from blast_ct.assets import get_config_path
    from blast_ct.nifti.savers import NiftiPatchSaver
    from blast_ct.read_config import get_model, get_test_loader
    from blast_ct.train import set_device
    from blast_ct.trainer.inference import ModelInference, ModelInferenceEnsemble

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [str(Path(args.weights) / f"model_{n}.pt") for n in range(1, args.members + 1)]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise SystemExit(f"missing staged weights: {', '.join(missing)}")

    t0 = time.perf_counter()
    with open(get_config_path()) as fh:
        config = json.load(fh)
    device = set_device("cpu")
    config["test"]["batch_size"] = 32  # console_tool's CPU setting
    job_dir = str(out / "job")
    os.makedirs(job_dir, exist_ok=True)
    csv = os.path.join(job_dir, "test.csv")
    pd.DataFrame(data=[["im_0", args.input]], columns=["id", "image"]).to_csv(csv, index=False)
    model = get_model(config)
    loader = get_test_loader(config, model, csv, use_cuda=False)
    saver = NiftiPatchSaver(job_dir, loader, write_prob_maps=False, do_localisation=False)
    tee = _TeeProbs(saver, out / "probs.raw")
    if len(paths) == 1:
        ModelInference(job_dir, device, model, tee, paths[0], "segmentation")(loader)
    else:
        ModelInferenceEnsemble(job_dir, device, model, tee, paths, task="segmentation")(loader)
    tee.fh.close()
    frame = pd.read_csv(os.path.join(job_dir, "predictions", "prediction.csv"))
    prediction = str(frame.loc[0, "prediction"])
    seconds = time.perf_counter() - t0
    peak = peak_rss_mb()

    _heat_on_input(out, tee, loader.dataset, args.input)
    volumes = {c: float(frame.loc[0, c]) for c in frame.columns if c.endswith("_volume_ml")}
    emit({"seconds": seconds, "peak_rss_mb": peak, "prediction": prediction,
          "tiles": tee.count, "volumes_ml": volumes,
          "note": f"{tee.count} tiles x {len(paths)} members, CPU batch 32"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
