"""Importers: published models (TF.js, TorchScript, ...) turned into ONNX by Lucida's own code.

Each importer reads the authors' files in place and builds the ONNX graph with
``onnx.helper``; no foreign runtime is imported.
"""
