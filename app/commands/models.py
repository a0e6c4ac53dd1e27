"""``lucida models list|show ID|install PACK|remove ID|import FAMILY DIR``: the model pack
registry."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("models", help="list, show, install or remove model packs",
                                   description="Model packs: bundled ones and those installed "
                                   "in the library (<library>/models).")
    sub = parser.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    p = sub.add_parser("list", help="list installed and bundled model packs")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("show", help="show a pack's manifest summary and model card")
    p.add_argument("id", metavar="ID", help="a pack id, or a pack folder/.zip to inspect")
    p.set_defaults(func=cmd_show)
    p = sub.add_parser("install", help="install a pack folder or .zip (hashes are verified)")
    p.add_argument("pack", metavar="PACK")
    p.add_argument("--replace", action="store_true", help="replace an installed pack")
    p.set_defaults(func=cmd_install)
    p = sub.add_parser("import", help="build packs from a model family's published files "
                       "and install them",
                       description="Convert the authors' published model files (e.g. brainchop's "
                       "TF.js MeshNet folders) into Lucida packs and install them, hashes "
                       "verified like `lucida models install`.")
    p.add_argument("family", metavar="FAMILY", help="model family: brainchop, blast-ct")
    p.add_argument("source", metavar="DIR", help="folder of the authors' files")
    p.add_argument("--model", action="append", default=None, metavar="NAME",
                   help="import only this model (repeatable; default: every model in DIR)")
    p.add_argument("--replace", action="store_true", help="replace installed packs")
    p.set_defaults(func=cmd_import)
    p = sub.add_parser("remove", help="remove an installed pack")
    p.add_argument("id", metavar="ID", help="the id of a pack installed in the library "
                   "(`lucida models list`); never a path")
    p.set_defaults(func=cmd_remove)


def _registry(args: argparse.Namespace) -> Any:
    from app.paths import library_dir
    from inference.registry import Registry

    return Registry.for_library(library_dir(args.library))


def cmd_list(args: argparse.Namespace) -> int:
    reg = _registry(args)
    packs = reg.list()
    if args.json:
        print(json.dumps([{"id": p.id, "name": p.manifest.name, "version": p.manifest.version,
                           "modality": p.manifest.modality, "bundled": p.bundled,
                           "path": str(p.source)} for p in packs], indent=2))
        return 0
    if not packs:
        print("no model packs installed (install one with `lucida models install PACK`)")
    for p in packs:
        where = "bundled" if p.bundled else "installed"
        m = p.manifest
        print(f"{m.id:32} {m.version:9} {'/'.join(m.modality):6} {where:9} {m.name}")
    for problem in reg.problems:
        print(f"unreadable pack {problem.source}: {problem.message}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    pack = _registry(args).resolve(args.id)
    m = pack.manifest
    print(f"{m.name} ({m.id} {m.version})")
    print(f"  authors:    {', '.join(m.authors)}")
    print(f"  licence:    {m.license}")
    print(f"  modality:   {'/'.join(m.modality)}   body part: {'/'.join(m.body_part) or '-'}")
    print(f"  output:     {m.output.kind}; labels: "
          + ", ".join(f"{lab.value}={lab.name}" for lab in m.output.labels))
    print("  files:      " + ", ".join(f"{f.path} (sha256 {f.sha256[:12]}…)" for f in m.files))
    print(f"  source:     {pack.source}")
    print(f"  notice:     {m.research_use_notice}")
    if m.demo_only:
        print("  demo only:  a demonstration, not a model; Lucida runs it only on its synthetic "
              "demo study")
    print()
    print(pack.model_card())
    return 0


def cmd_install(args: argparse.Namespace) -> int:
    pack = _registry(args).install(args.pack, replace=args.replace)
    print(f"installed {pack.id} {pack.manifest.version} in {pack.source} (hashes verified)")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    for path in _registry(args).remove(args.id):
        print(f"removed {args.id} ({path})")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """Build every pack in a staging folder first, then install them one by one through the
    registry (hash checks, atomic move-in); a conversion error installs nothing."""
    import tempfile
    from pathlib import Path

    from inference.importers.registry import pack_builder

    build = pack_builder(args.family)
    reg = _registry(args)
    with tempfile.TemporaryDirectory(prefix="lucida-import-") as staging:
        folders: list[Path] = []
        for name in args.model or [None]:
            folders.extend(build(Path(args.source).expanduser(), Path(staging), model=name))
        for folder in folders:
            pack = reg.install(folder, replace=args.replace)
            print(f"imported {pack.id} {pack.manifest.version} into {pack.source} "
                  "(hashes verified)")
    return 0
