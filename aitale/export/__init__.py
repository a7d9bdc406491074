"""Deployment of the trained model: ONNX with a KV cache, INT8 ONNX and TorchScript, converted, checked and
measured (``stages/export.py`` runs it all; the decoders over these files are in ``aitale.generation.decoders``).
``model_card`` writes the README.md of every model folder the pipeline publishes."""
