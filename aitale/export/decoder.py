"""GPT-2's forward pass with the key/value cache as plain tensors, for tracing.

transformers 5 keeps the cache in a ``DynamicCache`` object and builds its attention masks
with run-time machinery; rather than trace through those, the exported graphs come from
this module: the same weights and arithmetic as ``GPT2LMHeadModel`` (the export stage
checks the logits against it), with

* inputs ``input_ids``, ``attention_mask`` (past + new positions), ``position_ids`` and
  ``past_key_<i>``/``past_value_<i>`` of shape (batch, heads, past, head_dim), where a past
  of length 0 is the first step;
* outputs ``logits`` and ``present_key_<i>``/``present_value_<i>`` (past + new positions).

A tied output head is stored once, as (n_embd, vocab): the embedding is a column gather
from it and the head a plain MatMul, so INT8 quantization keeps one 8-bit copy.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel

SUPPORTED = ("gpt2",)
TORCHSCRIPT_META = "aitale.json"  # extra file in the TorchScript archive: shape and special tokens


class UnsupportedModel(ValueError):
    """The model is not an architecture the export handles."""


def linear(conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """GPT-2's Conv1D as MatMul + Add (its own addmm exports as Gemm, which INT8 leaves in fp32)."""
    return torch.matmul(x, conv.weight) + conv.bias


def input_names(n_layer: int) -> list[str]:
    return ["input_ids", "attention_mask", "position_ids", *past_names(n_layer)]


def past_names(n_layer: int) -> list[str]:
    return [f"past_{kind}_{i}" for i in range(n_layer) for kind in ("key", "value")]


def output_names(n_layer: int) -> list[str]:
    return ["logits", *(name.replace("past_", "present_") for name in past_names(n_layer))]


class CachedDecoder(nn.Module):
    """``logits, *present = decoder(input_ids, attention_mask, position_ids, *past)``."""

    def __init__(self, model: PreTrainedModel):
        super().__init__()
        config = model.config
        if config.model_type not in SUPPORTED or getattr(config, "add_cross_attention", False):
            raise UnsupportedModel(
                f"export handles GPT-2 decoders ({', '.join(SUPPORTED)}); this model is {config.model_type!r}"
            )
        body = model.transformer
        self.n_layer, self.n_head = config.n_layer, config.n_head
        self.head_dim = config.n_embd // config.n_head
        self.eps = config.layer_norm_epsilon
        wte, head = body.wte.weight, model.lm_head.weight
        self.tied = wte.data_ptr() == head.data_ptr()
        # (n_embd, vocab): the embedding gathers columns, the head multiplies by it.
        self.head = nn.Parameter(head.detach().t().contiguous(), requires_grad=False)
        self.wte = None if self.tied else nn.Parameter(wte.detach().clone(), requires_grad=False)
        self.wpe = nn.Parameter(body.wpe.weight.detach().clone(), requires_grad=False)
        self.blocks = nn.ModuleList(body.h)
        self.ln_f = body.ln_f
        self.scaling = [block.attn.scaling for block in body.h]
        self.eval()

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        if self.wte is not None:
            return self.wte[input_ids]
        columns = torch.index_select(self.head, 1, input_ids.reshape(-1))  # (n_embd, batch*seq)
        return columns.t().reshape(input_ids.shape[0], input_ids.shape[1], -1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
                *past: torch.Tensor) -> tuple[torch.Tensor, ...]:
        batch, length = input_ids.shape
        hidden = self.embed(input_ids) + self.wpe[position_ids]
        bias = self.mask(attention_mask, length, hidden.dtype)
        present: list[torch.Tensor] = []
        for i, block in enumerate(self.blocks):
            attn, key, value = self.attention(i, block, block.ln_1(hidden), bias, past[2 * i], past[2 * i + 1])
            hidden = hidden + attn
            hidden = hidden + linear(block.mlp.c_proj, block.mlp.act(linear(block.mlp.c_fc, block.ln_2(hidden))))
            present += [key, value]
        logits = torch.matmul(self.ln_f(hidden), self.head)
        return (logits, *present)

    @staticmethod
    def mask(attention_mask: torch.Tensor, length: int, dtype: torch.dtype) -> torch.Tensor:
        """(batch, 1, new, past + new) additive bias: causal, and blind to padded positions."""
        total = attention_mask.shape[1]
        keys = torch.arange(total, device=attention_mask.device)
        queries = torch.arange(length, device=attention_mask.device) + (total - length)
        allowed = (keys[None, :] <= queries[:, None])[None, None] & (attention_mask[:, None, None, :] > 0)
        zero = torch.zeros((), dtype=dtype)
        blocked = torch.full((), torch.finfo(dtype).min, dtype=dtype)
        return torch.where(allowed, zero, blocked)

    def attention(self, i: int, block: nn.Module, x: torch.Tensor, bias: torch.Tensor,
                  past_key: torch.Tensor, past_value: torch.Tensor) -> tuple[torch.Tensor, ...]:
        batch, length, width = x.shape
        query, key, value = linear(block.attn.c_attn, x).split(width, dim=2)
        query, key, value = (t.reshape(batch, length, self.n_head, self.head_dim).transpose(1, 2)
                             for t in (query, key, value))
        key = torch.cat([past_key, key], dim=2)
        value = torch.cat([past_value, value], dim=2)
        scores = torch.matmul(query, key.transpose(-1, -2)) * self.scaling[i] + bias
        out = torch.matmul(torch.softmax(scores, dim=-1), value)
        out = out.transpose(1, 2).reshape(batch, length, width)
        return linear(block.attn.c_proj, out), key, value

    def empty_past(self, batch: int, dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
        shape = (batch, self.n_head, 0, self.head_dim)
        return [torch.zeros(shape, dtype=dtype) for _ in range(2 * self.n_layer)]
