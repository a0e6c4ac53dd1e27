"""The spawned worker: results, cancel, deliberate crashes, and telemetry off."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.errors import CancelledError, InferenceError, ModelPackError
from core.volume import Volume
from inference import TELEMETRY_OPT_OUT
from inference.worker import InferenceJob, JobOptions

REPO = Path(__file__).resolve().parents[2]

# The variables by which onnxruntime (core/platform/telemetry_environment.h) detects a CI run.
ORT_CI_MARKERS = ("CI", "TF_BUILD", "GITHUB_ACTIONS", "GITLAB_CI", "CIRCLECI", "TRAVIS",
                  "JENKINS_URL", "CODEBUILD_BUILD_ID", "BUILDKITE", "TEAMCITY_VERSION",
                  "APPVEYOR", "BITBUCKET_BUILD_NUMBER", "SYSTEM_TEAMFOUNDATIONCOLLECTIONURI")


def _volume() -> Volume:
    arr = np.zeros((24, 20, 22), dtype=np.float32)
    arr[5:9, 6:10, 7:12] = 0.9
    affine = np.diag([2.0, 0.8, 0.8, 1.0])
    affine[:3, 3] = (10.0, -5.0, 3.0)
    return Volume(arr, affine, series_uid="1.2.826.1", modality="CT")


def test_worker_returns_the_same_result_as_in_process(tmp_path: Path, make_pack: Any,
                                                     models: dict[str, Any]) -> None:
    from inference import run

    vol = _volume()
    pack = make_pack(models["identity"]())
    job = InferenceJob.start(vol, pack, JobOptions(threads=1), work_dir=tmp_path / "cache")
    res = job.result(timeout=120)
    direct = run(vol, pack, threads=1)
    np.testing.assert_array_equal(res.label_map.array, direct.label_map.array)
    assert res.heatmap is not None and direct.heatmap is not None
    np.testing.assert_allclose(res.heatmap.array, direct.heatmap.array)
    assert [f.to_dict() for f in res.findings] == [f.to_dict() for f in direct.findings]
    assert res.findings[0].voxel_count == 4 * 4 * 5
    assert res.provenance["provider"] == "CPUExecutionProvider"
    assert job.poll().state == "done"
    # The job folder is removed; the worker remembered that the model needs no rewrite.
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["graph-rewrites"]
    digest = res.provenance["model"]["files"]["model.onnx"]
    assert [p.name.endswith(digest) for p in (tmp_path / "cache" / "graph-rewrites").iterdir()] \
        == [True]


def test_worker_carries_a_detectors_findings(tmp_path: Path, make_pack: Any,
                                            models: dict[str, Any]) -> None:
    from inference import run

    vol = _volume()
    pack = make_pack(models["detector"]((1, 2, 2)), tiling={"batch_size": 1},
                     output={"kind": "detections", "channels": 7,
                             "labels": [{"value": 1, "name": "spot"}]},
                     postprocessing=[])
    res = InferenceJob.start(vol, pack, JobOptions(threads=1),
                             work_dir=tmp_path / "cache").result(timeout=120)
    direct = run(vol, pack, threads=1)
    assert len(res.findings) == 1
    assert [f.to_dict() for f in res.findings] == [f.to_dict() for f in direct.findings]
    np.testing.assert_allclose(res.findings[0].centroid_index, (5, 6, 7))  # first 0.9 voxel
    np.testing.assert_array_equal(res.label_map.array, direct.label_map.array)


@pytest.mark.parametrize(("crash", "signame"), [("segfault", "SIGSEGV"), ("kill", "SIGKILL")])
def test_worker_crash_becomes_an_error(tmp_path: Path, make_pack: Any, models: dict[str, Any],
                                       worker_faults: Any, crash: str, signame: str) -> None:
    worker_faults(crash=crash, crash_once_marker=str(tmp_path / "crashed"))
    job = InferenceJob.start(_volume(), make_pack(models["identity"]()), work_dir=tmp_path)
    with pytest.raises(InferenceError, match=f"stopped unexpectedly: {signame}"):
        job.result(timeout=120)
    status = job.poll()
    assert status.state == "error" and signame in (status.error or "")
    # This process is still fine and can run the next job.
    ok = InferenceJob.start(_volume(), make_pack(models["identity"]()), work_dir=tmp_path)
    assert ok.result(timeout=120).findings


def test_cancel_mid_run_stops_the_worker(tmp_path: Path, make_pack: Any,
                                         models: dict[str, Any], worker_faults: Any) -> None:
    worker_faults(delay_per_progress_s=0.05)
    pack = make_pack(models["identity"](), tiling={"patch_size": [4, 4, 4], "batch_size": 1,
                                                   "overlap": 0.5})
    job = InferenceJob.start(_volume(), pack, JobOptions(threads=1), work_dir=tmp_path)
    while job.poll().fraction < 0.2:
        assert not job.poll().finished
        time.sleep(0.05)
    job.cancel(wait=True)
    assert job.poll().state == "cancelled"
    assert not job._process.is_alive()
    with pytest.raises(CancelledError):
        job.result(timeout=5)


def test_bad_pack_error_crosses_the_process_boundary(tmp_path: Path, make_pack: Any,
                                                     models: dict[str, Any]) -> None:
    job = InferenceJob.start(_volume(), make_pack(models["rank4"]()), work_dir=tmp_path)
    with pytest.raises(ModelPackError, match="rank 4"):
        job.result(timeout=120)


def test_fresh_home_gets_no_onnxruntime_telemetry(tmp_path: Path, make_pack: Any,
                                                  models: dict[str, Any]) -> None:
    pack = make_pack(models["identity"]())
    script = textwrap.dedent(f"""
        import numpy as np
        from core.volume import Volume
        from inference import run
        from inference.worker import InferenceJob
        vol = Volume(np.ones((6, 6, 6), np.float32), np.eye(4), modality="CT")
        run(vol, {str(pack)!r}, threads=1)
        InferenceJob.start(vol, {str(pack)!r}, work_dir={str(tmp_path / "jobs")!r}).result(60)
        print("ran")
    """)
    # onnxruntime collects nothing when it sees a CI marker (CI, GITHUB_ACTIONS, ...), so
    # both runs drop those as well as every opt-out variable: otherwise, in CI, the Lucida run
    # would pass whether or not Lucida switches telemetry off.
    dropped = set(ORT_CI_MARKERS) | set(TELEMETRY_OPT_OUT) | {"ORT_RUNNING_UNIT_TESTS"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    for name in ("with_lucida", "control"):
        home = tmp_path / name
        home.mkdir()
        env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), PYTHONPATH=str(REPO))
        code = script if name == "with_lucida" else textwrap.dedent(f"""
            import onnxruntime as ort
            ort.InferenceSession(open({str(pack / "model.onnx")!r}, "rb").read(),
                                 providers=["CPUExecutionProvider"])
            print("ran")
        """)
        out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO,
                             capture_output=True, text=True, timeout=180)
        assert out.returncode == 0, out.stderr
        assert "ran" in out.stdout
        telemetry = home / ".cache" / "Microsoft" / "DeveloperTools"
        if name == "with_lucida":
            assert not telemetry.exists(), sorted(home.rglob("*"))
        else:
            # Proves the check can fail: plain onnxruntime does write there.
            assert telemetry.exists()
