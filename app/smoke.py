"""``lucida --smoke-test [--smoke-out DIR]``: does this installation work, end to end?

It makes the demo study in a temporary library, loads it in the real main window (not
shown on screen), runs the default bundled model on it through the inference worker
process, renders every view, and writes ``smoke.png`` (the 2 × 2 layout) and
``smoke.json`` (build info, versions, execution provider, timings, each step) into DIR (default: a
new folder in the system's temporary directory). Exit 0 when every step worked, else 1
with the failing step and its reason on stderr and in the report. It writes nothing
anywhere else: the library, preferences and window state live in a temporary folder that
is removed at the end. An installer's CI runs it on the packaged build.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: How long each step may take before the smoke test gives up (software GL, 2 cores).
STEP_TIMEOUT_S = 300.0


class SmokeFailure(Exception):
    """A step did not do what it must; the message says what was seen."""


def run_smoke_test(out_dir: Path | None = None) -> int:
    out = Path(out_dir) if out_dir is not None else Path(
        tempfile.mkdtemp(prefix="lucida-smoke-"))
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"ok": False, "build": _build(), "steps": [],
                              "versions": _versions()}
    code = 1
    with tempfile.TemporaryDirectory(prefix="lucida-smoke-library-") as tmp:
        try:
            _run_steps(Path(tmp), out, report)
            report["ok"] = True
            code = 0
        except Exception as exc:  # every failure is the report's reason, never a traceback
            report["error"] = f"{type(exc).__name__}: {exc}"
            report["traceback"] = traceback.format_exc(limit=8)
            print(f"lucida smoke test FAILED at {_last_step(report)}: {report['error']}",
                  file=sys.stderr)
    from core.atomic import write_text

    write_text(out / "smoke.json", json.dumps(report, indent=2) + "\n")
    if code == 0:
        total = sum(s["seconds"] for s in report["steps"])
        print(f"lucida smoke test passed in {total:.1f} s: {out / 'smoke.png'}, "
              f"{out / 'smoke.json'}")
    return code


def _last_step(report: dict[str, Any]) -> str:
    return str(report["steps"][-1]["step"]) if report["steps"] else "start"


def _build() -> dict[str, Any]:
    """Which build ran the check (version, build id, commit, built_at, frozen): an installer's
    CI report names the exact bundle it tested."""
    from dataclasses import asdict

    from app.build_info import build_info

    try:
        return asdict(build_info())
    except Exception as exc:  # a damaged build_info.json is a finding, not a crash
        return {"error": f"{type(exc).__name__}: {exc}"}


def _versions() -> dict[str, str]:
    from app import __version__

    out = {"lucida": __version__, "python": platform.python_version(),
           "system": f"{platform.system()} {platform.machine()}"}
    # VTK by its vtkmodules package: `import vtk` loads every VTK module, and the
    # installer bundles only those Lucida uses.
    for name, module_name in (("onnxruntime", "onnxruntime"), ("vtk", "vtkmodules"),
                              ("PySide6", "PySide6"), ("pydicom", "pydicom"),
                              ("SimpleITK", "SimpleITK"), ("numpy", "numpy")):
        try:
            module = __import__(module_name)
            out[name] = str(getattr(module, "__version__", "") or getattr(module, "Version", ""))
        except Exception as exc:  # a missing piece is a finding, not a crash
            out[name] = f"unavailable ({type(exc).__name__})"
    return out


def _run_steps(tmp: Path, out: Path, report: dict[str, Any]) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    from app.gui import display_problem, make_application
    from app.main_window import MainWindow
    from app.settings import PREFERENCES_FILE, WINDOW_STATE_FILE, Preferences

    def step(name: str, action: Callable[[], Any]) -> Any:
        report["steps"].append({"step": name, "seconds": 0.0})
        t0 = time.perf_counter()
        value = action()
        report["steps"][-1]["seconds"] = round(time.perf_counter() - t0, 3)
        return value

    def wait(what: str, done: Callable[[], bool]) -> None:
        end = time.perf_counter() + STEP_TIMEOUT_S
        while not done():
            QApplication.processEvents()
            time.sleep(0.01)
            if time.perf_counter() > end:
                raise SmokeFailure(f"{what}: nothing after {STEP_TIMEOUT_S:.0f} s")

    problem = display_problem()
    if problem:
        raise SmokeFailure(problem)
    # Mesa keeps compiled shaders under ~/.cache: in the temporary folder here, so the
    # check leaves nothing behind (read when the first GL context is made).
    os.environ.setdefault("MESA_SHADER_CACHE_DIR", str(tmp / "gl-shader-cache"))
    app = step("start Qt", make_application)
    library = tmp / "library"
    library.mkdir()
    window = MainWindow(library, Preferences(), tmp / PREFERENCES_FILE,
                        tmp / WINDOW_STATE_FILE, open_demo=True, interactive=False)
    try:
        # Rendered for real, but never on the user's screen.
        window.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen, True)
        window.resize(1600, 1000)
        window.show()
        step("make and load the demo study", lambda: wait(
            "the demo study", lambda: window.current_volume is not None))
        volume = window.current_volume
        report["series"] = {"shape_kji": list(volume.shape), "modality": volume.modality}
        panel = window.models_panel
        pack_id = panel.selected_pack_id()
        if pack_id is None:
            raise SmokeFailure("no bundled model pack is offered for the demo study")

        def run_model() -> None:
            if not panel.run_selected():
                raise SmokeFailure(f"{pack_id} did not start: {panel.status.text()}")
            wait(f"the model {pack_id}", lambda: not panel.running)
            result = panel.last_result
            if result is None:
                raise SmokeFailure(f"{pack_id} failed: {panel.status.text()}")
            report["model"] = {
                "pack": pack_id, "findings": len(result.findings),
                "provider": str(result.provenance.get("provider", "")),
                "timings_s": result.provenance.get("timings_s", {})}

        step(f"run the default model ({pack_id})", run_model)

        def render_all() -> None:
            window.set_layout("2x2")
            wait("the 2 × 2 layout", lambda: len(window.viewer.visible_view_names()) == 4)
            app.processEvents()
            blank = []
            for name, view in window.viewer.views().items():
                if not view.isVisible():
                    continue
                rgb = view.grab_rgb()
                if int((rgb.max(axis=2) > 40).sum()) < 1000:
                    blank.append(name)
            if blank:
                raise SmokeFailure(f"views rendered nothing: {', '.join(blank)}")
            from app.export_actions import compose_layout, png_bytes
            from core.atomic import write_bytes

            write_bytes(out / "smoke.png", png_bytes(compose_layout(window.viewer)))

        step("render every view", render_all)
    finally:
        window.close()
        window.deleteLater()
        app.processEvents()
