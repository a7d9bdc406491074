"""Tiny random-weight models (2 layers, 32 wide, 64 positions) of the architectures the spec names."""

from pathlib import Path

DECODERS = ("gpt2", "gpt_neo")  # the decoder-only bases of the spec, built tiny by `tiny_base`
ARCHITECTURES = (*DECODERS, "t5")


def tiny_gpt2(vocab_size: int = 300, n_positions: int = 64, bos: int = 0, eos: int = 0, pad: int = 1, seed: int = 0):
    """A random 2-layer, 32-wide GPT-2 in eval mode. Its large initial weights (0.2) give peaked logits,
    so greedy decoding never falls on a near-tie that float error could flip."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=n_positions,
        n_layer=2,
        n_head=2,
        n_embd=32,
        initializer_range=0.2,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=pad,
    )
    return GPT2LMHeadModel(config).eval()


def tiny_base(kind: str, tokenizer, folder: Path | None = None, seed: int = 0):
    """A random-weight model of architecture ``kind`` (2 layers, 32 wide, 64 positions) sized to ``tokenizer``;
    with ``folder``, saved there with save_pretrained and the tokenizer, as a local ``model.base``."""
    import torch
    from transformers import (
        GPTNeoConfig,
        GPTNeoForCausalLM,
        T5Config,
        T5ForConditionalGeneration,
    )

    ids = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    torch.manual_seed(seed)
    if kind == "gpt2":
        model = tiny_gpt2(
            len(tokenizer), bos=ids["bos_token_id"], eos=ids["eos_token_id"], pad=ids["pad_token_id"], seed=seed
        )
    elif kind == "gpt_neo":
        config = GPTNeoConfig(
            vocab_size=len(tokenizer),
            max_position_embeddings=64,
            hidden_size=32,
            num_layers=2,
            num_heads=2,
            intermediate_size=64,
            attention_types=[[["global", "local"], 1]],
            window_size=8,  # shorter than the prompts: the local layer's window is exercised
            initializer_range=0.2,
            **ids,
        )
        model = GPTNeoForCausalLM(config)
    elif kind == "t5":
        # T5's own tokenizer is a sentencepiece file from the hub; the tiny one uses the test tokenizer
        config = T5Config(
            vocab_size=len(tokenizer),
            d_model=32,
            d_kv=16,
            d_ff=64,
            num_layers=2,
            num_decoder_layers=2,
            num_heads=2,
            relative_attention_num_buckets=8,
            relative_attention_max_distance=16,
            n_positions=64,
            initializer_factor=1.0,
            decoder_start_token_id=tokenizer.pad_token_id,
            **ids,
        )
        model = T5ForConditionalGeneration(config)
    else:
        raise ValueError(f"no tiny {kind}")
    model.eval()
    if folder is not None:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    return model
