"""Which importer builds the packs of a model family (`lucida models import FAMILY DIR`).

Builders are named as ``"module:function"`` strings and imported only when used, so one
family's heavy or missing importer never breaks another. A builder is called as
``build(src_dir, out_dir, *, model=None) -> list[Path]`` (one pack folder per model).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import cast

from core.errors import ModelPackError

PackBuilder = Callable[..., list[Path]]

BUILDERS: dict[str, str] = {
    "brainchop": "inference.importers.brainchop_pack:build_pack",
    "blast-ct": "inference.importers.blast_ct_pack:build_pack",
    "deepbet": "inference.importers.deepbet_pack:build_pack",
}


def families() -> list[str]:
    return sorted(BUILDERS)


def pack_builder(family: str) -> PackBuilder:
    """The pack builder of ``family``; ModelPackError naming the families it knows otherwise."""
    target = BUILDERS.get(family)
    if target is None:
        raise ModelPackError(f"no importer for model family {family!r}; known families: "
                             f"{', '.join(families())}")
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not module_name.startswith(exc.name):
            raise
        raise ModelPackError(f"the {family} importer ({module_name}) is not part of this "
                             "Lucida build") from exc
    builder = getattr(module, attr, None)
    if not callable(builder):
        raise ModelPackError(f"the {family} importer {target} has no function {attr!r}")
    return cast(PackBuilder, builder)
