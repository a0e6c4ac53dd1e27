"""The command line starts without heavy frameworks and sets the privacy switch."""

from __future__ import annotations

import json
import subprocess
import sys

from app.cli import main


def test_help_lists_commands_and_exits_zero(capsys) -> None:  # type: ignore[no-untyped-def]
    try:
        main(["--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    assert "lucida" in out and "--library" in out


def test_cli_import_does_not_load_qt_vtk_or_onnxruntime() -> None:
    code = (
        "import json, sys, os\n"
        "from app.cli import build_parser\n"
        "build_parser()\n"
        "heavy = [m for m in ('PySide6', 'vtkmodules', 'vtk', 'onnxruntime') if m in sys.modules]\n"
        "print(json.dumps({'heavy': heavy, 'ort': os.environ.get('ORT_DISABLE_TELEMETRY')}))\n"
    )
    env_free = {k: v for k, v in __import__("os").environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env_free).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["heavy"] == []
    assert result["ort"] == "1"


def test_output_into_a_closed_pipe_is_not_an_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`lucida models list | head -0`: the reader has gone before the command writes."""
    import os

    read_fd, write_fd = os.pipe()
    os.close(read_fd)                      # nobody will ever read
    # Buffered stdout, as in a plain shell: the broken pipe then shows only when it is flushed.
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"},
           "LUCIDA_LIBRARY": str(tmp_path / "lib")}
    proc = subprocess.run([sys.executable, "-m", "app.cli", "models", "list"], stdout=write_fd,
                          stderr=subprocess.PIPE, text=True, env=env, timeout=120)
    os.close(write_fd)
    assert "internal error" not in proc.stderr
    assert "BrokenPipe" not in proc.stderr
    assert proc.returncode == 0, proc.stderr
