"""Knowledge distillation: a smaller GPT-2 student trained on a teacher's logits.

The student shares the teacher's tokenizer, vocabulary and context; only its depth, width
and heads differ (``distill`` params). Its loss on each next-token position is

    alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE(student, true token)

(Hinton et al., 2015: the T^2 keeps the soft-target gradients on the same scale as the
hard-target ones whatever the temperature). Training follows the trainer's conventions:
seeded init, the seeded per-epoch block order of :func:`aitale.modeling.trainer.fit`, AdamW
with its betas, weight-decay groups, gradient clipping and linear warmup/decay. The teacher
runs frozen in eval mode (no dropout), so its targets are the same every run.

Everything here is deterministic for a seed except :func:`generation_speed`, whose figures
are logged (and written to ``benchmarks/results/`` on request), never put in the metrics.
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import GenerationConfig, GPT2LMHeadModel, PreTrainedModel, PreTrainedTokenizerBase

from aitale.evaluation.perplexity import score_texts, torch_logits
from aitale.modeling.blocks import Blocks
from aitale.modeling.device import Runtime
from aitale.modeling.model import gpt2_config, model_context
from aitale.modeling.trainer import (
    evaluate_loss,
    make_optimizer,
    memory_mb,
    optimizer_step,
    planned_steps,
    step_blocks,
)
from aitale.modeling.wandb_run import OFF, WandbRun
from aitale.params import DistillParams

log = logging.getLogger(__name__)

WEIGHT_FILES = ("*.safetensors", "*.bin")
LOG_EVERY = 10  # optimizer steps between progress lines


@dataclass(frozen=True)
class Recipe:
    """The optimizer settings the student borrows from the scratch recipe of ``train``."""

    weight_decay: float
    warmup_steps: int


def build_student(teacher: PreTrainedModel, params: DistillParams) -> GPT2LMHeadModel:
    """A GPT-2 of the params' shape with the teacher's vocabulary, context, special tokens and dropout."""
    config = teacher.config
    return GPT2LMHeadModel(
        gpt2_config(
            vocab_size=config.vocab_size,
            context=model_context(teacher),
            n_layer=params.n_layer,
            n_head=params.n_head,
            n_embd=params.n_embd,
            dropout=getattr(config, "resid_pdrop", 0.0),
            attn_dropout=getattr(config, "attn_pdrop", 0.0),
            bos_token_id=config.bos_token_id,
            eos_token_id=config.eos_token_id,
            pad_token_id=config.pad_token_id,
        )
    )


def parameter_count(model: torch.nn.Module) -> int:
    """Distinct parameters (tied input/output embeddings count once)."""
    return sum(p.numel() for p in model.parameters())


def weights_bytes(folder: str | Path) -> int:
    """Bytes of the weight files in a save_pretrained folder (not the tokenizer or configs)."""
    return sum(path.stat().st_size for pattern in WEIGHT_FILES for path in Path(folder).glob(pattern))


def distill_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, ids: torch.Tensor, temperature: float, alpha: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, KL, CE), each a mean over the predicted positions; logits are (batch, length, vocab).

    Position ``i`` predicts token ``i + 1``, so the last position (no true next token) is
    left out of both terms. The KL is in nats per token at temperature ``temperature``.
    """
    vocab = student_logits.shape[-1]
    student = student_logits[:, :-1].float().reshape(-1, vocab)
    teacher = teacher_logits[:, :-1].float().reshape(-1, vocab)
    targets = ids[:, 1:].reshape(-1)
    kl = (
        F.kl_div(
            F.log_softmax(student / temperature, dim=-1),
            F.log_softmax(teacher / temperature, dim=-1),
            reduction="sum",
            log_target=True,
        )
        / student.shape[0]
    )
    ce = F.cross_entropy(student, targets)
    loss = alpha * temperature**2 * kl + (1 - alpha) * ce
    return loss, kl, ce


def distill(
    student: PreTrainedModel,
    teacher: PreTrainedModel,
    train: Blocks,
    params: DistillParams,
    recipe: Recipe,
    runtime: Runtime,
    wandb_run: WandbRun = OFF,
) -> dict:
    """Train ``student`` in place on ``teacher``'s logits; returns the step count and last-epoch mean losses.
    ``wandb_run`` gets each step's losses, learning rate, tokens/s and memory."""
    teacher.to(runtime.device).eval().requires_grad_(False)
    student.to(runtime.device).train()
    steps_per_epoch, total = planned_steps(len(train), params.batch_size, params.epochs)
    optimizer, scheduler = make_optimizer(
        student, params.learning_rate, recipe.weight_decay, recipe.warmup_steps, total
    )
    log.info(
        "distilling %d steps: %d blocks of %d tokens, %d per step, T=%g, alpha=%g, %s",
        total,
        len(train),
        train.ids.shape[1],
        params.batch_size,
        params.temperature,
        params.alpha,
        runtime.dtype or "fp32",
    )
    sums = {"loss": 0.0, "kl": 0.0, "ce": 0.0}
    tokens_seen = 0
    started = time.perf_counter()
    for step in range(total):
        began = time.perf_counter()
        if step % steps_per_epoch == 0:
            sums = dict.fromkeys(sums, 0.0)
        x = step_blocks(train, step, steps_per_epoch, params.batch_size, params.seed).to(runtime.device)
        with runtime.autocast():
            with torch.no_grad():
                teacher_logits = teacher(input_ids=x).logits
            student_logits = student(input_ids=x).logits
        loss, kl, ce = distill_loss(student_logits, teacher_logits, x, params.temperature, params.alpha)
        loss.backward()
        optimizer_step(student, optimizer, scheduler)
        tokens_seen += x.numel()
        losses = {"loss": loss.item(), "kl": kl.item(), "ce": ce.item()}
        sums = {key: total_so_far + losses[key] for key, total_so_far in sums.items()}
        done, lr = step + 1, scheduler.get_last_lr()[0]
        speed = {"tokens_per_second": x.numel() / (time.perf_counter() - began), "memory_mb": memory_mb(runtime)}
        wandb_run.log({**_prefixed("train/", {**losses, "lr": lr}), **_prefixed("speed/", speed)}, step=done)
        if done % LOG_EVERY == 0 or done == total:
            progress = "step %d/%d  loss %.4f  kl %.4f  ce %.4f  lr %.2e  %.0fs"
            log.info(progress, done, total, *losses.values(), lr, time.perf_counter() - started)
    return {
        "steps": total,
        "tokens_seen": tokens_seen,
        **{f"train_{key}_last_epoch": round(value / steps_per_epoch, 4) for key, value in sums.items()},
    }


def _prefixed(prefix: str, values: dict[str, float]) -> dict[str, float]:
    return {prefix + name: value for name, value in values.items()}


def bits_per_byte(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: list[str], stride: int) -> float:
    """Bits per byte of ``texts`` (sliding window, fp32), as the evaluation scores them."""
    score = score_texts(
        texts, lambda text: tokenizer(text).input_ids, torch_logits(model), model_context(model), stride
    )
    return score.bits_per_byte


def scores(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    val: Blocks,
    texts: list[str],
    batch_size: int,
    stride: int,
    runtime: Runtime,
) -> dict:
    """A model's validation loss and test bits per byte, rounded as the metrics hold them."""
    val_loss = evaluate_loss(model, val, batch_size, runtime)
    model.eval()  # evaluate_loss leaves the model in train mode
    return {
        "val_loss": round(val_loss, 4),
        "test_bits_per_byte": round(bits_per_byte(model, tokenizer, texts, stride), 4),
    }


def described(model: PreTrainedModel, folder: str | Path, scored: dict) -> dict:
    """A model's entry in the metrics: its GPT-2 shape, parameters, the weights' bytes in ``folder``, its scores."""
    return {**shape(model), "parameters": parameter_count(model), "weights_bytes": weights_bytes(folder), **scored}


def shape(model: PreTrainedModel) -> dict:
    """n_layer, n_head and n_embd of a GPT-2; nothing for another kind of model."""
    config = model.config
    return {key: getattr(config, key) for key in ("n_layer", "n_head", "n_embd")} if config.model_type == "gpt2" else {}


def ratios(student: dict, teacher: dict) -> dict:
    """Student over teacher, for the figures that say what distilling gained and cost."""
    return {
        key: round(student[key] / teacher[key], 4)
        for key in ("parameters", "weights_bytes", "test_bits_per_byte", "val_loss")
    }


# --- generation speed: timing, kept out of the metrics -----------------------------------


@torch.no_grad()
def generation_speed(
    models: dict[str, PreTrainedModel],
    tokenizer: PreTrainedTokenizerBase,
    prompt_text: str,
    new_tokens: int,
    repeats: int = 5,
    threads: int | None = None,
) -> dict[str, dict]:
    """Greedy tokens/s of each model continuing ``prompt_text`` (fp32, KV cache), by name.

    Exactly ``new_tokens`` are generated every time (end-of-text is suppressed until then),
    after one untimed warm-up run each. The models take turns, one run each per round, so
    that other load on the machine falls on all of them alike; the best round gives
    ``tokens_per_second`` (the least disturbed), the median is reported beside it.
    ``threads`` sets torch's intra-op threads for the timing (default: leave them as they are).
    """
    ids = tokenizer(prompt_text, return_tensors="pt").input_ids
    room = min(model_context(model) for model in models.values()) - ids.shape[1]
    new_tokens = max(1, min(new_tokens, room))
    config = _exactly(new_tokens, tokenizer)
    seconds: dict[str, list[float]] = {name: [] for name in models}
    outputs = {}
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        for model in models.values():
            model.eval()
            model.generate(ids.to(model.device), generation_config=config)  # warm-up: allocation, kernels
        for _ in range(repeats):
            for name, model in models.items():
                started = time.perf_counter()
                outputs[name] = model.generate(ids.to(model.device), generation_config=config)
                seconds[name].append(time.perf_counter() - started)
        used = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    return {
        name: _figures(times, outputs[name], ids.shape[1], repeats, used, tokenizer) for name, times in seconds.items()
    }


def _exactly(new_tokens: int, tokenizer: PreTrainedTokenizerBase) -> GenerationConfig:
    """Greedy decoding of exactly ``new_tokens`` with every sampling and penalty setting neutral, so that a
    model's saved generation_config cannot change the decoding."""
    return GenerationConfig(
        do_sample=False,
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        temperature=1.0,
        top_k=50,
        top_p=1.0,
        no_repeat_ngram_size=0,
        repetition_penalty=1.0,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )


def _figures(
    times: list[float], output: torch.Tensor, prompt_tokens: int, repeats: int, threads: int, tokenizer
) -> dict:
    """One model's timings (seconds per run) as tokens/s, with its continuation."""
    generated = output.shape[1] - prompt_tokens
    return {
        "new_tokens": generated,
        "prompt_tokens": prompt_tokens,
        "repeats": repeats,
        "threads": threads,
        "seconds_best": round(min(times), 4),
        "seconds_median": round(statistics.median(times), 4),
        "tokens_per_second": round(generated / min(times), 1),
        "tokens_per_second_median": round(generated / statistics.median(times), 1),
        "text": tokenizer.decode(output[0, prompt_tokens:], skip_special_tokens=True).strip(),
    }
