"""Train Lucida's lung nodule detector (a small 3-D U-Net) on the patches of make_dataset.py.

    .venv-torch/bin/python packaging/nodules/train.py --data DIR --out DIR \
        [--steps 2400] [--seed 17] [--threads 2]

Runs in the side environment with torch 2.13.0 (never a Lucida runtime dependency), on the
CPU, single process, with a fixed seed and torch's deterministic algorithms, so a run is
repeatable. Writes ``model.pt`` (the state dict), ``train.json`` (loss curve, time, sizes)
and ``model.onnx`` (opset 17, batch and spatial axes dynamic, BatchNorm folded by
onnxruntime at load), which export to a pack by build_pack.py.

The network: 4 levels of two 3×3×3 convolutions with BatchNorm and LeakyReLU (8, 16, 32,
32 channels, stride-2 convolutions down, nearest upsampling and a convolution up), one logit
per voxel: the nodule probability after a sigmoid. No InstanceNorm on purpose:
onnxruntime's CPU InstanceNormalization differs from torch's by up to 1e-2 (found with
deepbet), BatchNorm at inference is an exact affine map.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

# 8 channels at full resolution: inference on a chest CT's lungs at 1 mm must fit in ~15 s
# on 2 cores (measured with onnxruntime: 600 ns a voxel on one thread; 16 channels: 1560).
WIDTH = 8
CROP = 48  # training crop from each 64³ patch (random position: translation for free)
BATCH = 4  # 4 × 48³: 0.56 s a step on 2 cores (8 × 48³: 1.2 s, out of cache)


def block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm3d(cout),
        nn.LeakyReLU(0.1, inplace=True),
        nn.Conv3d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm3d(cout),
        nn.LeakyReLU(0.1, inplace=True))


class NoduleNet(nn.Module):
    """A compact 3-D U-Net; input [N, 1, D, H, W] (D, H, W multiples of 8), one logit out.
    Width 8: 8, 16, 32 and 32 channels at 1, 1/2, 1/4 and 1/8 resolution."""

    def __init__(self, width: int = WIDTH) -> None:
        super().__init__()
        w = width
        self.enc1 = block(1, w)
        self.enc2 = block(w, 2 * w, stride=2)
        self.enc3 = block(2 * w, 4 * w, stride=2)
        self.bottom = block(4 * w, 4 * w, stride=2)
        self.dec3 = block(8 * w, 2 * w)
        self.dec2 = block(4 * w, w)
        self.dec1 = block(2 * w, w)
        self.head = nn.Conv3d(w, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        b = self.bottom(e3)
        up = lambda t: F.interpolate(t, scale_factor=2.0, mode="nearest")  # noqa: E731
        d3 = self.dec3(torch.cat([up(b), e3], 1))
        d2 = self.dec2(torch.cat([up(d3), e2], 1))
        d1 = self.dec1(torch.cat([up(d2), e1], 1))
        return self.head(d1)


def loss_fn(logit: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE weighted towards the rare nodule voxels, plus a soft Dice on the batch, so small
    nodules count as much as large ones' many voxels would suggest."""
    pos = target.sum()
    neg = target.numel() - pos
    weight = torch.clamp(neg / (pos + 1.0), max=50.0)
    bce = F.binary_cross_entropy_with_logits(logit, target, pos_weight=weight.detach())
    p = torch.sigmoid(logit)
    dims = (1, 2, 3, 4)
    inter = (p * target).sum(dims)
    denom = p.sum(dims) + target.sum(dims)
    has = target.sum(dims) > 0
    dice = 1 - (2 * inter + 1) / (denom + 1)
    dice_term = dice[has].mean() if bool(has.any()) else logit.new_zeros(())
    return bce + dice_term


def batches(images: np.ndarray, masks: np.ndarray, rng: np.random.Generator,
            mined: np.ndarray | None = None, mined_fraction: float = 0.0
            ) -> tuple[torch.Tensor, torch.Tensor]:
    x = np.empty((BATCH, 1, CROP, CROP, CROP), dtype=np.float32)
    y = np.empty((BATCH, 1, CROP, CROP, CROP), dtype=np.float32)
    span = images.shape[1] - CROP
    # Stage 1 draws the batch's patches first, the later stages patch by patch: each order
    # is the one that made the shipped weights, kept so that a rerun gives the same bits.
    first = rng.integers(0, len(images), size=BATCH) if mined is None else None
    for b in range(BATCH):
        o = rng.integers(0, span + 1, size=3)
        sl = (slice(o[0], o[0] + CROP), slice(o[1], o[1] + CROP), slice(o[2], o[2] + CROP))
        if first is not None:
            n = int(first[b])
            xi, yi = images[n][sl].astype(np.float32), masks[n][sl].astype(np.float32)
        elif mined is not None and rng.random() < mined_fraction:  # a hard negative
            xi = mined[int(rng.integers(len(mined)))][sl].astype(np.float32)
            yi = np.zeros_like(xi)
        else:
            n = int(rng.integers(len(images)))
            xi, yi = images[n][sl].astype(np.float32), masks[n][sl].astype(np.float32)
        for ax in range(3):  # flips: nodules have no handedness
            if rng.random() < 0.5:
                xi, yi = np.flip(xi, ax), np.flip(yi, ax)
        x[b, 0], y[b, 0] = xi, yi
    return torch.from_numpy(x), torch.from_numpy(y)


def train(data: Path, out: Path, steps: int, seed: int, threads: int, *,
          init: Path | None = None, mined_fraction: float = 0.35) -> dict[str, Any]:
    """Stage 1 from scratch; with ``init`` (stage 1's model.pt) stage 2: fine-tuning with
    ``mined_fraction`` of every batch from ``data/mined.npz`` (hard negatives)."""
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    with np.load(data / "patches.npz") as z:
        images, masks = z["image"], z["mask"]
    mined = None
    if init is not None:
        with np.load(data / "mined.npz") as z:
            mined = z["image"]
    rng = np.random.default_rng(seed if init is None else seed + 1)
    net = NoduleNet()
    max_lr = 3e-3
    if init is not None:
        net.load_state_dict(torch.load(init, weights_only=True))
        max_lr = 1e-3
    opt = torch.optim.AdamW(net.parameters(), lr=max_lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=steps,
                                                pct_start=0.1)
    t0 = time.perf_counter()
    curve: list[list[float]] = []
    run = 0.0
    net.train()
    for step in range(1, steps + 1):
        x, y = batches(images, masks, rng, mined, mined_fraction if mined is not None else 0)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        sched.step()
        value = float(loss.detach())
        run = 0.98 * run + 0.02 * value if step > 1 else value
        if step % 50 == 0 or step == steps:
            el = time.perf_counter() - t0
            curve.append([step, round(run, 5), round(el, 1)])
            print(f"step {step}/{steps} loss {run:.4f} {el:.0f} s "
                  f"(~{el / step * (steps - step) / 60:.1f} min left)", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), out / "model.pt")
    export_onnx(net, out / "model.onnx")
    info = {"steps": steps, "seed": seed, "threads": threads, "batch": BATCH, "crop": CROP,
            "parameters": sum(p.numel() for p in net.parameters()),
            "seconds": round(time.perf_counter() - t0, 1), "loss_curve": curve,
            "torch": torch.__version__, "patches": len(images),
            "fine_tuned": init is not None,
            "mined_patches": 0 if mined is None else len(mined),
            "mined_fraction": mined_fraction if mined is not None else 0.0}
    if init is not None and (init.parent / "train.json").is_file():
        before = json.loads((init.parent / "train.json").read_text())
        before.pop("loss_curve", None)
        info["previous"] = before  # the stages before this one, in a chain
    (out / "train.json").write_text(json.dumps(info, indent=1))
    return info


def export_onnx(net: NoduleNet, path: Path) -> None:
    net.eval()
    x = torch.zeros(1, 1, 32, 32, 32)
    torch.onnx.export(net, (x,), str(path), input_names=["image"], output_names=["logit"],
                      opset_version=17, dynamo=False,
                      dynamic_axes={"image": {0: "N", 2: "a", 3: "b", 4: "c"},
                                    "logit": {0: "N", 2: "a", 3: "b", 4: "c"}})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=2400)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--init", type=Path, default=None,
                    help="stage 2: fine-tune this model.pt with data/mined.npz negatives")
    ap.add_argument("--mined-fraction", type=float, default=0.35)
    args = ap.parse_args()
    info = train(args.data, args.out, args.steps, args.seed, args.threads, init=args.init,
                 mined_fraction=args.mined_fraction)
    print(f"trained {info['parameters']} parameters in {info['seconds'] / 60:.1f} min "
          f"-> {args.out}")
    return 0 if math.isfinite(info["loss_curve"][-1][1]) else 1


if __name__ == "__main__":
    sys.exit(main())
