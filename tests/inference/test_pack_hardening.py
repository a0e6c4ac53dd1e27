"""Model packs from outside: ids never become paths, nothing in a pack is followed or
read past a cap, a failed install leaves nothing behind, demo packs stay on the demo."""

from __future__ import annotations

import json
import os
import socket
import stat
import zipfile
from pathlib import Path
from typing import Any

import pytest

from core.errors import ModelPackError
from inference.manifest import DEMO_SERIES_UID, demo_only_problem, parse_manifest
from inference.pack import ModelPack, PackLimits
from inference.registry import Registry

SECRET = "top secret, outside the pack\n"


@pytest.fixture
def pack(make_pack: Any, models: dict[str, Any]) -> Path:
    return Path(make_pack(models["identity"]()))


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "lib" / "models", bundled_dir=tmp_path / "no-bundled")


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "elsewhere" / "secret.txt"
    path.parent.mkdir()
    path.write_text(SECRET)
    return path


def _leftovers(reg: Registry) -> list[str]:
    """Everything in the user models folder (hidden staging folders included)."""
    return sorted(p.name for p in reg.user_dir.iterdir()) if reg.user_dir.exists() else []


def _manifest(folder: Path) -> dict[str, Any]:
    return dict(json.loads((folder / "manifest.json").read_text()))


def _zip(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w") as zf:
        for f in sorted(folder.iterdir()):
            zf.write(f, f.name)
    return target


def _zip_entry(archive: Path, name: str, data: bytes, mode: int) -> None:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix: the high 16 bits of external_attr are st_mode
    info.external_attr = mode << 16
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr(info, data)


# --- ids never become paths ---------------------------------------------------------


def test_a_manifest_id_that_is_not_a_folder_name_is_refused_naming_the_field(
        pack: Path) -> None:
    m = _manifest(pack)
    # "model\n" once passed: a regex '$' also matches before a final newline.
    for bad in ("../x", "model\n", "Upper", "a/b", "a\\b", ".", "nul", "com1.pack", "pack."):
        m["id"] = bad
        with pytest.raises(ModelPackError, match=r"manifest\.json: id: "):
            parse_manifest(json.dumps(m))


@pytest.mark.parametrize("card", ["../../elsewhere/secret.txt", "/etc/passwd", "C:card.md"])
def test_a_model_card_outside_the_pack_is_refused_naming_the_field(pack: Path,
                                                                   card: str) -> None:
    m = _manifest(pack)
    m["model_card"] = card
    with pytest.raises(ModelPackError, match=r"manifest\.json: model_card: .* inside the pack"):
        parse_manifest(json.dumps(m))


@pytest.mark.parametrize("ref", ["..", "../victim", "sub/x"])
def test_remove_takes_an_id_never_a_path(tmp_path: Path, registry: Registry, ref: str) -> None:
    library = registry.user_dir.parent
    for folder in (library, library / "victim", registry.user_dir / "sub" / "x"):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "manifest.json").write_text("{}")
    with pytest.raises(ModelPackError, match="is not a model pack id"):
        registry.remove(ref)
    with pytest.raises(ModelPackError, match="is not a model pack id"):
        registry.remove(str(library / "victim"))
    for folder in (library, library / "victim", registry.user_dir / "sub" / "x"):
        assert (folder / "manifest.json").is_file()


def test_a_link_in_the_models_folder_is_a_problem_never_followed_or_removed(
        tmp_path: Path, registry: Registry, pack: Path, make_pack: Any,
        models: dict[str, Any]) -> None:
    registry.user_dir.mkdir(parents=True)
    (registry.user_dir / "test-model").symlink_to(pack, target_is_directory=True)
    assert registry.list() == []
    assert "symbolic link" in registry.problems[0].message
    with pytest.raises(ModelPackError, match="not an installed model pack"):
        registry.remove("test-model")
    assert (pack / "manifest.json").is_file() and (pack / "model.onnx").is_file()
    # Installing over the link neither follows nor replaces it.
    with pytest.raises(ModelPackError, match="is a symbolic link, not an installed pack"):
        registry.install(pack, replace=True)
    assert (registry.user_dir / "test-model").is_symlink()
    assert (pack / "manifest.json").is_file()
    # A real install beside the link is removed alone, leaving no trace.
    other = make_pack(models["identity"](), id="other-model")
    registry.install(other)
    assert registry.remove("other-model") == (registry.user_dir / "other-model",)
    assert _leftovers(registry) == ["test-model"]
    assert (other / "model.onnx").is_file()  # the source is not touched


# --- plain files only ------------------------------------------------------------------


def test_a_link_to_a_device_is_refused_before_any_copy(registry: Registry,
                                                       pack: Path) -> None:
    (pack / "weights.bin").symlink_to("/dev/zero")
    with pytest.raises(ModelPackError, match=r"weights\.bin is a symbolic link"):
        registry.install(pack)
    assert _leftovers(registry) == []


def test_a_link_to_a_file_elsewhere_is_never_read(registry: Registry, pack: Path,
                                                  secret: Path) -> None:
    (pack / "MODEL_CARD.md").unlink()
    (pack / "MODEL_CARD.md").symlink_to(secret)
    opened = ModelPack.open(pack)
    card = opened.model_card()
    assert SECRET.strip() not in card and "symbolic link" in card
    with pytest.raises(ModelPackError, match=r"MODEL_CARD\.md is a symbolic link"):
        registry.install(pack)
    assert _leftovers(registry) == []


def test_linked_manifest_onnx_or_folder_are_refused(tmp_path: Path, pack: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    for name in ("manifest.json", "model.onnx"):
        os.replace(pack / name, real / name)
        (pack / name).symlink_to(real / name)
    with pytest.raises(ModelPackError, match=r"manifest\.json is a symbolic link"):
        ModelPack.open(pack)
    os.replace(real / "manifest.json", pack / "manifest.json")
    opened = ModelPack.open(pack)
    with pytest.raises(ModelPackError, match=r"model\.onnx is a symbolic link"):
        opened.verify()
    with pytest.raises(ModelPackError, match=r"model\.onnx is a symbolic link"):
        opened.onnx_bytes()
    # A linked folder on the way to a file counts as a link too.
    (pack / "model.onnx").unlink()
    os.replace(real / "model.onnx", tmp_path / "model.onnx")
    (pack / "sub").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(ModelPackError, match=r"/sub is a symbolic link"):
        opened.read_bytes("sub/model.onnx")


def test_fifo_and_socket_are_refused_without_blocking(registry: Registry, pack: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    os.mkfifo(pack / "pipe")
    with pytest.raises(ModelPackError, match=r"pipe is a FIFO"):
        registry.install(pack)
    os.unlink(pack / "pipe")
    monkeypatch.chdir(pack)  # a Unix socket path must be short
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind("sock")
        with pytest.raises(ModelPackError, match=r"sock is a socket"):
            registry.install(pack)
    assert _leftovers(registry) == []


def test_a_pack_path_that_is_a_fifo_or_device_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pack.zip")
    with pytest.raises(ModelPackError, match="is a FIFO"):
        ModelPack.open(tmp_path / "pack.zip")
    with pytest.raises(ModelPackError, match="is a device"):
        ModelPack.open("/dev/zero")


@pytest.mark.parametrize(("mode", "kind"), [
    (stat.S_IFIFO | 0o644, "FIFO"),
    (stat.S_IFCHR | 0o644, "device"), (stat.S_IFSOCK | 0o644, "socket")])
def test_zip_entries_must_be_plain_files(tmp_path: Path, registry: Registry, pack: Path,
                                         mode: int, kind: str) -> None:
    archive = _zip(pack, tmp_path / "p.zip")
    _zip_entry(archive, "extra", b"/etc/passwd", mode)
    with pytest.raises(ModelPackError, match=rf"p\.zip: extra is a {kind}"):
        registry.install(archive)
    assert _leftovers(registry) == []


def test_a_zip_holding_a_link_is_refused_when_opened(tmp_path: Path, pack: Path) -> None:
    (pack / "MODEL_CARD.md").unlink()
    archive = _zip(pack, tmp_path / "p.zip")
    _zip_entry(archive, "MODEL_CARD.md", str(tmp_path / "elsewhere").encode(),
               stat.S_IFLNK | 0o777)
    with pytest.raises(ModelPackError, match=r"p\.zip: MODEL_CARD\.md is a symbolic link"):
        ModelPack.open(archive)


def test_a_zip_naming_one_file_twice_is_refused(tmp_path: Path, registry: Registry,
                                                pack: Path) -> None:
    archive = _zip(pack, tmp_path / "p.zip")
    _zip_entry(archive, "model_card.MD", b"shadow", stat.S_IFREG | 0o644)
    _zip_entry(archive, "MODEL_CARD.MD", b"shadow", stat.S_IFREG | 0o644)
    with pytest.raises(ModelPackError, match="twice"):
        registry.install(archive)
    assert _leftovers(registry) == []


# --- caps ------------------------------------------------------------------------------


def _big_manifest(folder: Path) -> None:
    m = _manifest(folder)
    m["citation"] = "x" * (1 << 20)  # valid JSON, just over 1 MiB
    (folder / "manifest.json").write_text(json.dumps(m))


def test_a_manifest_over_one_mib_is_refused_before_parsing(tmp_path: Path, pack: Path) -> None:
    _big_manifest(pack)
    with pytest.raises(ModelPackError,
                       match=r"pack\d+/manifest\.json is larger than 1 MiB, the limit for a "
                             r"manifest"):
        ModelPack.open(pack)
    with pytest.raises(ModelPackError, match=r"p\.zip/manifest\.json is larger than 1 MiB"):
        ModelPack.open(_zip(pack, tmp_path / "p.zip"))


def test_file_and_total_caps_count_the_bytes_copied(tmp_path: Path, pack: Path) -> None:
    largest = max(p.stat().st_size for p in pack.iterdir())
    files = sum(p.stat().st_size for p in pack.iterdir())
    (pack / "notes.txt").write_bytes(b"n" * (largest + 1))
    per_file = Registry(tmp_path / "a", tmp_path / "none",
                        limits=PackLimits(file_bytes=largest, total_bytes=1 << 30))
    with pytest.raises(ModelPackError, match=rf"notes\.txt is larger than {largest} bytes, "
                                             "the limit for one file"):
        per_file.install(pack)
    assert _leftovers(per_file) == []
    total = Registry(tmp_path / "b", tmp_path / "none",
                     limits=PackLimits(file_bytes=1 << 30, total_bytes=files + largest))
    with pytest.raises(ModelPackError, match=r"is larger than .* the limit for a whole"):
        total.install(pack)
    assert _leftovers(total) == []
    archive = _zip(pack, tmp_path / "p.zip")  # members inflate past the cap the same way
    with pytest.raises(ModelPackError, match=r"p\.zip/notes\.txt is larger than"):
        per_file.install(archive)
    assert _leftovers(per_file) == []


def test_a_model_card_over_its_cap_is_not_read(pack: Path) -> None:
    (pack / "MODEL_CARD.md").write_text("# Test model\n" + "y" * 5000)
    card = ModelPack.open(pack, limits=PackLimits(card_bytes=1000)).model_card()
    assert "larger than 1000 bytes" in card and "yyyy" not in card


# --- a failed install changes nothing ------------------------------------------------


def test_a_failed_replace_keeps_the_installed_pack(registry: Registry, pack: Path,
                                                   secret: Path) -> None:
    registry.install(pack)
    installed = registry.user_dir / "test-model"
    before = {p.name: p.read_bytes() for p in installed.iterdir()}
    m = _manifest(pack)
    m["version"] = "2.0.0"
    (pack / "manifest.json").write_text(json.dumps(m))
    (pack / "extra.txt").symlink_to(secret)
    with pytest.raises(ModelPackError, match=r"extra\.txt is a symbolic link"):
        registry.install(pack, replace=True)
    assert {p.name: p.read_bytes() for p in installed.iterdir()} == before
    assert _leftovers(registry) == ["test-model"]
    (pack / "extra.txt").unlink()
    assert registry.install(pack, replace=True).manifest.version == "2.0.0"
    assert _leftovers(registry) == ["test-model"]


# --- demo packs stay on the demo -------------------------------------------------------


def test_demo_only_is_declared_validated_and_tied_to_the_demo_series(pack: Path) -> None:
    from dicomio.demo import DEMO_SERIES_UID as DICOMIO_DEMO_SERIES_UID

    assert DEMO_SERIES_UID == DICOMIO_DEMO_SERIES_UID
    m = _manifest(pack)
    m["demo_only"] = "sometimes"
    with pytest.raises(ModelPackError, match=r"manifest\.json: demo_only: "):
        parse_manifest(json.dumps(m))
    m["demo_only"] = True
    demo = parse_manifest(json.dumps(m))
    assert demo_only_problem(demo, DEMO_SERIES_UID) is None
    for uid in ("1.2.826.0.1.3680043.8.498.1", ""):
        problem = demo_only_problem(demo, uid)
        assert problem is not None and "not a model" in problem and "demo_only" in problem
    m["demo_only"] = False
    assert demo_only_problem(parse_manifest(json.dumps(m)), "1.2.3") is None
