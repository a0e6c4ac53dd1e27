"""Parse a brainchop MeshNet TF.js "layers-model" model.json into a checked layer list.

Only what MeshNet uses is accepted: a linear chain InputLayer -> (Conv3D | Activation)* with
the last Conv3D as the output. Anything else is refused naming the layer and field, so a
model we do not understand is never silently mis-converted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.errors import ModelPackError

ACTIVATIONS = ("linear", "relu", "elu", "gelu")


class MeshNetImportError(ModelPackError):
    """A brainchop model folder that Lucida cannot convert (the message says why)."""


@dataclass(frozen=True)
class ConvSpec:
    name: str
    filters: int
    kernel: int
    dilation: int
    padding: str  # "same" | "valid"
    use_bias: bool
    activation: str  # fused activation of the Conv3D itself (MeshNet: "linear")
    # brainchop's web app normalises (per channel, over space) after layers named *_gn
    # (mindgrab); the Keras topology does not say so.
    instance_norm: bool


@dataclass(frozen=True)
class ActivationSpec:
    name: str
    activation: str


LayerSpec = ConvSpec | ActivationSpec


@dataclass(frozen=True)
class Topology:
    model_name: str
    input_shape: tuple[int, int, int]  # spatial shape the model was trained on
    layers: tuple[LayerSpec, ...]

    @property
    def convs(self) -> list[ConvSpec]:
        return [layer for layer in self.layers if isinstance(layer, ConvSpec)]

    @property
    def n_classes(self) -> int:
        return self.convs[-1].filters


def _field(cfg: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in cfg:
        raise MeshNetImportError(f"{where}: field {key!r} is missing")
    return cfg[key]


def _isotropic(value: Any, key: str, where: str) -> int:
    """Keras stores kernel/stride/dilation as an int or a list of 3 equal ints."""
    vals = [value] * 3 if isinstance(value, int) else value
    if (not isinstance(vals, list) or len(vals) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in vals)):
        raise MeshNetImportError(f"{where}: field {key!r} = {value!r} is not 3 positive ints")
    if len(set(vals)) != 1:
        raise MeshNetImportError(f"{where}: field {key!r} = {value!r} is anisotropic "
                                 "(MeshNet layers are isotropic; not supported)")
    return int(vals[0])


def _activation(value: Any, key: str, where: str) -> str:
    if value not in ACTIVATIONS:
        raise MeshNetImportError(f"{where}: field {key!r} = {value!r} is not supported "
                                 f"(supported: {', '.join(ACTIVATIONS)})")
    return str(value)


def _conv(cfg: Mapping[str, Any], name: str, where: str) -> ConvSpec:
    filters = _field(cfg, "filters", where)
    if not isinstance(filters, int) or isinstance(filters, bool) or filters < 1:
        raise MeshNetImportError(f"{where}: field 'filters' = {filters!r} is not a positive int")
    kernel = _isotropic(_field(cfg, "kernel_size", where), "kernel_size", where)
    if _isotropic(cfg.get("strides", 1), "strides", where) != 1:
        raise MeshNetImportError(f"{where}: field 'strides' = {cfg.get('strides')!r} "
                                 "is not supported (only stride 1)")
    dilation = _isotropic(cfg.get("dilation_rate", 1), "dilation_rate", where)
    padding = _field(cfg, "padding", where)
    if padding not in ("same", "valid"):
        raise MeshNetImportError(f"{where}: field 'padding' = {padding!r} is not supported")
    if padding == "same" and kernel % 2 == 0:
        raise MeshNetImportError(f"{where}: field 'kernel_size' = {kernel} is even with 'same' "
                                 "padding (asymmetric padding not supported)")
    fmt = cfg.get("data_format", "channels_last")
    if fmt != "channels_last":
        raise MeshNetImportError(f"{where}: field 'data_format' = {fmt!r} is not supported "
                                 "(TF.js models are channels_last)")
    if cfg.get("groups", 1) != 1:
        raise MeshNetImportError(f"{where}: field 'groups' = {cfg.get('groups')!r} "
                                 "is not supported (only 1)")
    use_bias = cfg.get("use_bias", True)
    if not isinstance(use_bias, bool):
        raise MeshNetImportError(f"{where}: field 'use_bias' = {use_bias!r} is not a bool")
    activation = _activation(cfg.get("activation", "linear"), "activation", where)
    return ConvSpec(name=name, filters=filters, kernel=kernel, dilation=dilation,
                    padding=str(padding), use_bias=use_bias, activation=activation,
                    instance_norm=name.endswith("_gn"))


def _input_shape(cfg: Mapping[str, Any], where: str) -> tuple[int, int, int]:
    shape = cfg.get("batch_input_shape") or cfg.get("batch_shape")
    if not isinstance(shape, list) or len(shape) != 5:
        raise MeshNetImportError(f"{where}: field 'batch_input_shape' = {shape!r} is not "
                                 "[batch, D, H, W, channels]")
    if shape[4] != 1:
        raise MeshNetImportError(f"{where}: field 'batch_input_shape' has {shape[4]!r} "
                                 "channels (only single-channel input is supported)")
    dtype = cfg.get("dtype", "float32")
    if dtype != "float32":
        raise MeshNetImportError(f"{where}: field 'dtype' = {dtype!r} is not supported")
    spatial = shape[1:4]
    if not all(isinstance(s, int) and s > 0 for s in spatial):
        raise MeshNetImportError(f"{where}: field 'batch_input_shape' = {shape!r} has no "
                                 "fixed spatial size")
    return (int(spatial[0]), int(spatial[1]), int(spatial[2]))


def _inbound(layer: Mapping[str, Any]) -> list[str]:
    nodes = layer.get("inbound_nodes") or []
    names: list[str] = []
    for node in nodes:
        for ref in node:
            names.append(ref[0] if isinstance(ref, list) else ref.get("args", [{}])[0])
    return names


def parse_topology(model_json: Mapping[str, Any], model_name: str) -> Topology:
    """The checked MeshNet layer chain of a TF.js layers-model JSON document."""
    fmt = model_json.get("format")
    if fmt != "layers-model":
        raise MeshNetImportError(f"model.json: field 'format' = {fmt!r} is not 'layers-model' "
                                 "(graph models and others are not supported)")
    topo = model_json.get("modelTopology")
    if not isinstance(topo, Mapping):
        raise MeshNetImportError("model.json: field 'modelTopology' is missing")
    model_config = _field(topo, "model_config", "modelTopology")
    kind = model_config.get("class_name")
    if kind not in ("Functional", "Model", "Sequential"):
        raise MeshNetImportError(f"modelTopology.model_config: field 'class_name' = {kind!r} "
                                 "is not supported (Functional, Model or Sequential)")
    layers_cfg = _field(model_config.get("config", {}), "layers", "modelTopology.model_config")
    if not isinstance(layers_cfg, Sequence) or not layers_cfg:
        raise MeshNetImportError("modelTopology.model_config.config: field 'layers' is empty")

    layers: list[LayerSpec] = []
    input_shape: tuple[int, int, int] | None = None
    previous: str | None = None
    for index, layer in enumerate(layers_cfg):
        cfg = layer.get("config", {})
        name = str(layer.get("name") or cfg.get("name") or f"#{index}")
        class_name = layer.get("class_name")
        where = f"layer {index} {name!r} ({class_name})"
        if kind != "Sequential" and previous is not None and _inbound(layer) != [previous]:
            raise MeshNetImportError(f"{where}: field 'inbound_nodes' = {_inbound(layer)!r} "
                                     f"is not the previous layer {previous!r} (only a linear "
                                     "chain is supported)")
        if class_name == "InputLayer":
            if index != 0:
                raise MeshNetImportError(f"{where}: an InputLayer must come first")
            input_shape = _input_shape(cfg, where)
        elif class_name == "Conv3D":
            layers.append(_conv(cfg, name, where))
        elif class_name == "Activation":
            layers.append(ActivationSpec(name, _activation(
                _field(cfg, "activation", where), "activation", where)))
        else:
            raise MeshNetImportError(f"{where}: field 'class_name' = {class_name!r} is not "
                                     "supported (InputLayer, Conv3D, Activation)")
        previous = name
    if input_shape is None:
        first = layers_cfg[0]
        input_shape = _input_shape(first.get("config", {}),
                                   f"layer 0 {first.get('name')!r} (batch_input_shape)")
    if not layers or not isinstance(layers[-1], ConvSpec):
        raise MeshNetImportError("model.json: the last layer must be the output Conv3D")
    return Topology(model_name=model_name, input_shape=input_shape, layers=tuple(layers))
