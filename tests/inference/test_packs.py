"""Manifest validation names the field; packs (folder and .zip); the registry."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from core.errors import ModelPackError
from inference.manifest import parse_manifest
from inference.pack import ModelPack
from inference.registry import Registry


def _manifest(make_pack: Any, models: dict[str, Any]) -> dict[str, Any]:
    folder = make_pack(models["identity"]())
    return dict(json.loads((folder / "manifest.json").read_text()))


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda m: m["input"].update(normalization={"kind": "hu_window", "low": 100, "high": -5}),
     r"manifest\.json: input\.normalization\.hu_window: high must be greater than low"),
    (lambda m: m["input"].update(normalization={"kind": "hu_window", "low": "x", "high": 3}),
     r"input\.normalization\.hu_window\.low: "),
    (lambda m: m["input"].update(normalization={"kind": "magic"}),
     r"input\.normalization: .*kind"),
    (lambda m: m["input"].update(orientation="LLS"), r"input\.orientation: 'LLS' uses one"),
    (lambda m: m["tiling"].update(overlap=1.5), r"tiling\.overlap: "),
    (lambda m: m["tiling"].update(patch_size=None), r"tiling: patch_size is required"),
    (lambda m: m.update(colour="red"), r"colour: unknown key"),
    (lambda m: m["output"].update(labels=[{"value": 1, "name": "a", "channel": 0,
                                            "color": [1, 2, 300]}]),
     r"output\.labels\[0\]\.color: colour components"),
    (lambda m: m.pop("license"), r"license: required field is missing"),
    (lambda m: m.update(version="one"), r"version: 'one' is not a semantic version"),
    (lambda m: m["files"][0].update(sha256="abc"), r"files\[0\]\.sha256: must be 64"),
    (lambda m: m["files"][0].update(path="../evil.onnx"), r"files\[0\]\.path: "),
    (lambda m: m["postprocessing"].append({"step": "exec", "code": "rm -rf"}),
     r"postprocessing\[2\]: "),
    (lambda m: m.update(schema_version=0), r"schema_version: "),
])
def test_manifest_errors_name_the_field(make_pack: Any, models: dict[str, Any], mutate: Any,
                                        expected: str) -> None:
    m = _manifest(make_pack, models)
    mutate(m)
    with pytest.raises(ModelPackError, match=expected):
        parse_manifest(json.dumps(m))


def test_newer_schema_and_bad_json_are_explained(make_pack: Any,
                                                 models: dict[str, Any]) -> None:
    m = _manifest(make_pack, models)
    m["schema_version"] = 9
    with pytest.raises(ModelPackError, match="newer than this Lucida"):
        parse_manifest(json.dumps(m))
    with pytest.raises(ModelPackError, match="not valid JSON"):
        parse_manifest("{oops")


def _zip(folder: Path, target: Path, top: str | None = None) -> Path:
    with zipfile.ZipFile(target, "w") as zf:
        for f in folder.iterdir():
            zf.write(f, f"{top}/{f.name}" if top else f.name)
    return target


def test_zip_pack_reads_like_a_folder(tmp_path: Path, make_pack: Any,
                                      models: dict[str, Any]) -> None:
    folder = make_pack(models["identity"]())
    for top in (None, "wrapped"):
        pack = ModelPack.open(_zip(folder, tmp_path / f"p-{top}.zip", top))
        pack.verify()
        assert pack.manifest.id == "test-model"
        assert pack.model_card().startswith("# Test model")
        assert pack.onnx_bytes()[0] == (folder / "model.onnx").read_bytes()


def test_registry_install_list_remove(tmp_path: Path, make_pack: Any,
                                      models: dict[str, Any]) -> None:
    bundled = tmp_path / "bundled"
    bundled.mkdir()
    reg = Registry(tmp_path / "lib" / "models", bundled_dir=bundled)
    assert reg.list() == []
    folder = make_pack(models["identity"]())
    pack = reg.install(_zip(folder, tmp_path / "p.zip", "top"))
    assert pack.source == tmp_path / "lib" / "models" / "test-model"
    assert [p.id for p in reg.list()] == ["test-model"]
    assert reg.get("test-model").manifest.version == "1.0.0"
    with pytest.raises(ModelPackError, match="already installed"):
        reg.install(folder)
    reg.remove("test-model")
    assert reg.list() == []
    with pytest.raises(ModelPackError, match="no model pack with id 'test-model'"):
        reg.get("test-model")
    assert not [p for p in (tmp_path / "lib" / "models").iterdir()]


def test_install_refuses_hash_mismatch_naming_the_file(tmp_path: Path, make_pack: Any,
                                                       models: dict[str, Any]) -> None:
    folder = make_pack(models["identity"]())
    (folder / "model.onnx").write_bytes(b"tampered")
    reg = Registry(tmp_path / "lib", bundled_dir=tmp_path / "none")
    with pytest.raises(ModelPackError, match=r"model\.onnx has sha256"):
        reg.install(folder)
    assert not (tmp_path / "lib" / "test-model").exists()


def test_zip_with_unsafe_path_is_refused(tmp_path: Path, make_pack: Any,
                                         models: dict[str, Any]) -> None:
    folder = make_pack(models["identity"]())
    archive = _zip(folder, tmp_path / "evil.zip")
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("../outside.txt", "x")
    with pytest.raises(ModelPackError, match="unsafe path"):
        Registry(tmp_path / "lib", bundled_dir=tmp_path / "none").install(archive)
    assert not (tmp_path / "outside.txt").exists()


def test_broken_pack_is_listed_as_a_problem(tmp_path: Path) -> None:
    user = tmp_path / "models"
    (user / "broken").mkdir(parents=True)
    (user / "broken" / "manifest.json").write_text('{"schema_version": 1}')
    reg = Registry(user, bundled_dir=tmp_path / "none")
    assert reg.list() == []
    assert reg.problems and "broken" in str(reg.problems[0].source)
    assert "id: required field is missing" in reg.problems[0].message
