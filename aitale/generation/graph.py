"""Causal LMs' forward pass with the key/value cache as plain tensors, for tracing: GPT-2 and GPT-Neo.

transformers 5 keeps the cache in a ``DynamicCache`` object and builds its attention masks
with run-time machinery; rather than trace through those, the exported graphs come from
this module: the same weights and arithmetic as ``GPT2LMHeadModel`` and
``GPTNeoForCausalLM`` (the export stage checks the logits against them), with

* inputs ``input_ids``, ``attention_mask`` (past + new positions), ``position_ids`` and
  ``past_key_<i>``/``past_value_<i>`` of shape (batch, heads, past, head_dim), where a past
  of length 0 is the first step;
* outputs ``logits`` and ``new_key_<i>``/``new_value_<i>``: the keys and values of the new
  positions only, (batch, heads, new, head_dim).

The past is read, never copied: attention scores the new queries against the past and against
the new keys separately and joins only the scores, so a runtime can keep the past in a buffer
it writes in place (:mod:`aitale.generation.batch`: past column ``j`` of a row is its position
``j``, masked where not yet written) instead of growing and copying a cache at every step.

The two architectures differ only inside a block: GPT-2 has one fused ``c_attn`` Conv1D
and scales the scores by 1/sqrt(head_dim); GPT-Neo has separate bias-free q/k/v
projections, does not scale, and alternates global layers with local ones that see only
the last ``window_size`` positions.

A tied output head is stored once, as (n_embd, vocab): the embedding is a column gather
from it and the head a plain MatMul, so INT8 quantization keeps one 8-bit copy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel

SUPPORTED = ("gpt2", "gpt_neo")


class UnsupportedModel(ValueError):
    """The model is not an architecture the export handles."""


@dataclass(frozen=True)
class Shape:
    """What the runtime needs to know of a decoder: layers, heads, head width, context, vocabulary."""

    n_layer: int
    n_head: int
    head_dim: int
    n_embd: int
    context: int
    vocab_size: int
    eps: float


def shape_of(config) -> Shape:
    """The shape of a GPT-2 or GPT-Neo config (the two name their fields differently)."""
    if config.model_type == "gpt2":
        n_layer, n_head, n_embd, context = config.n_layer, config.n_head, config.n_embd, config.n_positions
    elif config.model_type == "gpt_neo":
        n_layer, n_head, n_embd = config.num_layers, config.num_heads, config.hidden_size
        context = config.max_position_embeddings
    else:
        raise UnsupportedModel(
            f"the decoder export handles {', '.join(SUPPORTED)}; this model is {config.model_type!r}"
        )
    return Shape(n_layer, n_head, n_embd // n_head, n_embd, context, config.vocab_size, config.layer_norm_epsilon)


def linear(conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """GPT-2's Conv1D as MatMul + Add (its own addmm exports as Gemm, which INT8 leaves in fp32)."""
    return torch.matmul(x, conv.weight) + conv.bias


class Dense(nn.Module):
    """An ``nn.Linear`` stored as (in, out), so that it traces as MatMul (+ Add), the form INT8 quantizes."""

    def __init__(self, layer: nn.Linear):
        super().__init__()
        self.weight = nn.Parameter(layer.weight.detach().t().contiguous(), requires_grad=False)
        self.bias = None if layer.bias is None else nn.Parameter(layer.bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.matmul(x, self.weight)
        return out if self.bias is None else out + self.bias


class CachedDecoder(nn.Module):
    """``logits, *new = decoder(input_ids, attention_mask, position_ids, *past)``: ``new``, the keys and values
    of the new positions only."""

    def __init__(self, model: PreTrainedModel):
        super().__init__()
        config = model.config
        if getattr(config, "add_cross_attention", False):
            raise UnsupportedModel("the decoder export handles decoder-only models, not cross-attention")
        shape = shape_of(config)
        self.kind = config.model_type
        self.shape = shape
        self.n_layer, self.n_head, self.head_dim = shape.n_layer, shape.n_head, shape.head_dim
        self.context = shape.context
        body = model.transformer
        wte, head = body.wte.weight, model.lm_head.weight
        self.tied = wte.data_ptr() == head.data_ptr()
        # (n_embd, vocab): the embedding gathers columns, the head multiplies by it.
        self.head = nn.Parameter(head.detach().t().contiguous(), requires_grad=False)
        self.wte = None if self.tied else nn.Parameter(wte.detach().clone(), requires_grad=False)
        self.wpe = nn.Parameter(body.wpe.weight.detach().clone(), requires_grad=False)
        self.ln_f = body.ln_f
        if self.kind == "gpt2":
            self.blocks = nn.ModuleList(body.h)
            self.scaling = [block.attn.scaling for block in body.h]
            self.windows: list[int | None] = [None] * shape.n_layer
        else:
            self.blocks = nn.ModuleList(NeoBlock(block) for block in body.h)
            self.scaling = [1.0] * shape.n_layer  # GPT-Neo does not scale its attention scores
            self.windows = [config.window_size if kind == "local" else None for kind in config.attention_layers]
        self.eval()

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        if self.wte is not None:
            return self.wte[input_ids]
        columns = torch.index_select(self.head, 1, input_ids.reshape(-1))  # (n_embd, batch*seq)
        return columns.t().reshape(input_ids.shape[0], input_ids.shape[1], -1)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor, *past: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        batch, length = input_ids.shape
        hidden = self.embed(input_ids) + self.wpe[position_ids]
        biases = {
            window: self.mask(attention_mask, length, hidden.dtype, window, position_ids)
            for window in set(self.windows)
        }
        new: list[torch.Tensor] = []
        for i, block in enumerate(self.blocks):
            bias = biases[self.windows[i]]
            attn, key, value = self.attention(i, block, block.ln_1(hidden), bias, past[2 * i], past[2 * i + 1])
            hidden = hidden + attn
            hidden = hidden + self.mlp(block, block.ln_2(hidden))
            new += [key, value]
        logits = torch.matmul(self.ln_f(hidden), self.head)
        return (logits, *new)

    @staticmethod
    def mask(
        attention_mask: torch.Tensor,
        length: int,
        dtype: torch.dtype,
        window: int | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(batch, 1, new, past + new) additive bias: causal, blind to padded positions, and for a local
        layer blind to keys ``window`` or more positions back (past column ``j`` is position ``j``, a new
        key is at its ``position_ids``)."""
        total = attention_mask.shape[1]
        keys = torch.arange(total, device=attention_mask.device)
        queries = torch.arange(length, device=attention_mask.device) + (total - length)
        allowed = (keys[None, :] <= queries[:, None])[None, None] & (attention_mask[:, None, None, :] > 0)
        if window is not None:
            past = keys[: total - length].expand(position_ids.shape[0], -1)
            key_positions = torch.cat([past, position_ids], dim=1)
            allowed = allowed & (position_ids[:, None, :, None] - key_positions[:, None, None, :] < window)
        zero = torch.zeros((), dtype=dtype)
        blocked = torch.full((), torch.finfo(dtype).min, dtype=dtype)
        return torch.where(allowed, zero, blocked)

    def mlp(self, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "gpt2":
            return linear(block.mlp.c_proj, block.mlp.act(linear(block.mlp.c_fc, x)))
        return block.c_proj(block.act(block.c_fc(x)))

    def attention(
        self,
        i: int,
        block: nn.Module,
        x: torch.Tensor,
        bias: torch.Tensor,
        past_key: torch.Tensor,
        past_value: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        batch, length, width = x.shape
        if self.kind == "gpt2":
            query, key, value = linear(block.attn.c_attn, x).split(width, dim=2)
        else:
            query, key, value = block.q_proj(x), block.k_proj(x), block.v_proj(x)
        query, key, value = (
            t.reshape(batch, length, self.n_head, self.head_dim).transpose(1, 2) for t in (query, key, value)
        )
        # the past and the new keys scored apart, the scores joined: the past is read, not copied
        scores = torch.cat(
            [torch.matmul(query, past_key.transpose(-1, -2)), torch.matmul(query, key.transpose(-1, -2))], dim=-1
        )
        if self.scaling[i] != 1.0:
            scores = scores * self.scaling[i]
        weights = torch.softmax(scores + bias, dim=-1)
        past_length = past_key.shape[2]
        out = torch.matmul(weights[..., :past_length], past_value) + torch.matmul(weights[..., past_length:], value)
        out = out.transpose(1, 2).reshape(batch, length, width)
        project = linear(block.attn.c_proj, out) if self.kind == "gpt2" else block.out_proj(out)
        return project, key, value

    def empty_past(self, batch: int, dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
        shape = (batch, self.n_head, 0, self.head_dim)
        return [torch.zeros(shape, dtype=dtype) for _ in range(2 * self.n_layer)]


class NeoBlock(nn.Module):
    """A GPT-Neo block's weights, with every projection as :class:`Dense`."""

    def __init__(self, block: nn.Module):
        super().__init__()
        attn = block.attn.attention
        self.ln_1, self.ln_2 = block.ln_1, block.ln_2
        self.q_proj, self.k_proj, self.v_proj = Dense(attn.q_proj), Dense(attn.k_proj), Dense(attn.v_proj)
        self.out_proj = Dense(attn.out_proj)
        self.c_fc, self.c_proj = Dense(block.mlp.c_fc), Dense(block.mlp.c_proj)
        self.act = block.mlp.act


# --- T5: an encoder graph and a decoder graph with its cache ----------------------------------------------


def _relative_bias(attention: nn.Module, queries: torch.Tensor, keys: torch.Tensor, bidirectional: bool):
    """T5's learned bias of each key's offset from each query, (1, heads, queries, keys)."""
    relative = keys[None, :] - queries[:, None]
    buckets = attention._relative_position_bucket(
        relative,
        bidirectional=bidirectional,
        num_buckets=attention.relative_attention_num_buckets,
        max_distance=attention.relative_attention_max_distance,
    )
    return attention.relative_attention_bias(buckets).permute(2, 0, 1).unsqueeze(0)


def _heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    batch, length, _ = x.shape
    return x.reshape(batch, length, n_head, -1).transpose(1, 2)


def _attend(query, key, value, bias, out: nn.Module) -> torch.Tensor:
    """T5 attention: unscaled scores (the scale is in the weights' initialisation)."""
    weights = torch.softmax(torch.matmul(query, key.transpose(-1, -2)) + bias, dim=-1)
    mixed = torch.matmul(weights, value)
    batch, _, length, _ = mixed.shape
    return out(mixed.transpose(1, 2).reshape(batch, length, -1))


def _padding_bias(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(batch, 1, 1, keys): 0 where a key is real, the dtype's minimum where it is padding."""
    blocked = torch.full((), torch.finfo(dtype).min, dtype=dtype)
    return torch.where(mask[:, None, None, :] > 0, torch.zeros((), dtype=dtype), blocked)


def seq2seq_shape(config) -> Shape:
    if config.model_type != "t5":
        raise UnsupportedModel(f"the sequence-to-sequence export handles t5; this model is {config.model_type!r}")
    # relative positions: no table, and transformers 5 saves no n_positions (the context is the tokenizer's)
    return Shape(
        config.num_decoder_layers, config.num_heads, config.d_kv, config.d_model, getattr(config, "n_positions", 0),
        config.vocab_size, config.layer_norm_epsilon,
    )  # fmt: skip


class Seq2SeqEncoder(nn.Module):
    """``*cross = encoder(input_ids, attention_mask)``: the request encoded, as every decoder layer's
    cross-attention keys and values (``cross_key_<i>``, ``cross_value_<i>``: batch, heads, source, d_kv)."""

    def __init__(self, model: PreTrainedModel):
        super().__init__()
        self.shape = seq2seq_shape(model.config)
        self.embed = model.shared
        self.blocks = model.encoder.block
        self.final = model.encoder.final_layer_norm
        self.cross = nn.ModuleList(block.layer[1].EncDecAttention for block in model.decoder.block)
        self.eval()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        hidden = self.embed(input_ids)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        first = self.blocks[0].layer[0].SelfAttention
        bias = _relative_bias(first, positions, positions, True) + _padding_bias(attention_mask, hidden.dtype)
        n_head = self.shape.n_head
        for block in self.blocks:
            layer = block.layer[0]
            attention = layer.SelfAttention
            x = layer.layer_norm(hidden)
            q, k, v = (_heads(project(x), n_head) for project in (attention.q, attention.k, attention.v))
            hidden = hidden + _attend(q, k, v, bias, attention.o)
            hidden = block.layer[-1](hidden)
        hidden = self.final(hidden)
        cross: list[torch.Tensor] = []
        for attention in self.cross:
            cross += [_heads(attention.k(hidden), n_head), _heads(attention.v(hidden), n_head)]
        return tuple(cross)


class Seq2SeqCachedDecoder(nn.Module):
    """``logits, *present = decoder(input_ids, attention_mask, encoder_mask, *past, *cross)``.

    ``attention_mask`` covers the decoder's past + new positions (as for GPT-2), ``encoder_mask`` is the
    request's padding mask shaped (batch, 1, source, 1) so that it pads and joins like a cache entry, and
    ``past`` holds ``past_key_<i>``/``past_value_<i>``, then ``cross`` the encoder's output."""

    def __init__(self, model: PreTrainedModel):
        super().__init__()
        config = model.config
        self.shape = seq2seq_shape(config)
        self.n_layer, self.n_head, self.head_dim = self.shape.n_layer, self.shape.n_head, self.shape.head_dim
        self.embed = model.shared
        self.blocks = model.decoder.block
        self.final = model.decoder.final_layer_norm
        self.head = model.lm_head
        self.scale = config.d_model**-0.5 if getattr(config, "scale_decoder_outputs", True) else 1.0
        self.eval()

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, encoder_mask: torch.Tensor, *cache: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        n = self.n_layer
        past, cross = cache[: 2 * n], cache[2 * n :]
        hidden = self.embed(input_ids)
        length, total = input_ids.shape[1], attention_mask.shape[1]
        keys = torch.arange(total, device=input_ids.device)
        queries = keys[total - length :]
        first = self.blocks[0].layer[0].SelfAttention
        self_bias = _relative_bias(first, queries, keys, False) + CachedDecoder.mask(
            attention_mask, length, hidden.dtype
        )
        cross_bias = _padding_bias(encoder_mask[:, 0, :, 0], hidden.dtype)
        present: list[torch.Tensor] = []
        for i, block in enumerate(self.blocks):
            layer = block.layer[0]
            attention = layer.SelfAttention
            x = layer.layer_norm(hidden)
            q, k, v = (_heads(project(x), self.n_head) for project in (attention.q, attention.k, attention.v))
            k, v = torch.cat([past[2 * i], k], dim=2), torch.cat([past[2 * i + 1], v], dim=2)
            present += [k, v]
            hidden = hidden + _attend(q, k, v, self_bias, attention.o)
            layer = block.layer[1]
            q = _heads(layer.EncDecAttention.q(layer.layer_norm(hidden)), self.n_head)
            hidden = hidden + _attend(q, cross[2 * i], cross[2 * i + 1], cross_bias, layer.EncDecAttention.o)
            hidden = block.layer[2](hidden)
        logits = self.head(self.final(hidden) * self.scale)
        return (logits, *present)
