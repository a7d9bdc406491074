"""Deployment of the trained model: ONNX with a KV cache, INT8 ONNX, TorchScript, and a
generator on onnxruntime (``runtime``). ``stages/export.py`` runs it all and checks it.
``model_card`` writes the README.md of every model folder the pipeline publishes."""
