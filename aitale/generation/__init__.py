"""One generation core for every caller: prompts, decoders over PyTorch and ONNX, the batched step loop.

``tell``, the evaluation, the export's parity checks and the server all write text through
:func:`aitale.generation.batch.generate` (or the server's running :class:`~aitale.generation.batch.Batch`),
so a seed means the same story everywhere. Importing this package loads no torch: the
onnxruntime decoders and the sampling run on numpy alone, as the server needs.
"""
