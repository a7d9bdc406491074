"""Typed schema of ``params.yaml``: one section per stage, validated before any work.

Every stage calls :func:`load_section`, which rejects unknown keys, wrong types and
out-of-range values with a :class:`~aitale.errors.ParamsError` naming the offending key.
Values live in ``params.yaml`` only: the schema gives types, ranges and help, not defaults.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from aitale.errors import ParamsError

Section = TypeVar("Section", bound=BaseModel)


class Strict(BaseModel):
    """Base of every params section: unknown keys and silent type coercion are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def read_params(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(params, dict):
        raise ParamsError(f"{path}: expected a mapping of sections at the top level")
    return params


def validate(schema: type[Section], name: str, values: Any, source: str = "params.yaml") -> Section:
    """Validate one section; the error names each bad key as ``section.key``."""
    if values is None:
        raise ParamsError(f"{source}: section '{name}' is missing")
    try:
        return schema.model_validate(values)
    except ValidationError as err:
        problems = []
        for error in err.errors():
            key = ".".join([name, *(str(part) for part in error["loc"])])
            got = "" if error["type"] == "missing" else f" (got {error['input']!r})"
            problems.append(f"  {key}: {error['msg']}{got}")
        raise ParamsError(f"{source}: invalid params\n" + "\n".join(problems)) from None


def load_section(
    schema: type[Section],
    name: str,
    path: str | Path = "params.yaml",
    overrides: dict[str, Any] | None = None,
) -> Section:
    """Read section ``name`` of ``path``, apply dotted ``overrides``, and validate it."""
    values = read_params(path).get(name)
    for dotted, value in (overrides or {}).items():
        values = _set_dotted(values or {}, dotted.split("."), value)
    return validate(schema, name, values, source=str(path))


def _set_dotted(mapping: dict[str, Any], keys: list[str], value: Any) -> dict[str, Any]:
    updated = dict(mapping)
    head, *rest = keys
    updated[head] = _set_dotted(updated.get(head) or {}, rest, value) if rest else value
    return updated


# --- data: where the sources come from (download stage) -------------------------------


class GutenbergParams(Strict):
    books: list[PositiveInt] = Field(description="Project Gutenberg ebook ids to download; [] keeps the pipeline offline")
    mirror: str = Field(
        min_length=1,
        description="URL template with {id} (http, https or file), or a local folder holding pg{id}.txt files",
    )
    sha256: dict[PositiveInt, str] = Field(description="expected sha256 per book id; books without a pin are not checked")
    timeout_s: PositiveFloat = Field(description="seconds to wait for one download before giving up")

    @field_validator("sha256")
    @classmethod
    def _hex_digests(cls, pins: dict[int, str]) -> dict[int, str]:
        for book, digest in pins.items():
            if not re.fullmatch(r"[0-9a-f]{64}", digest):
                raise ValueError(f"book {book}: a sha256 is 64 lowercase hex digits, got {digest!r}")
        return pins


class DataParams(Strict):
    gutenberg: GutenbergParams


# --- prepare: cleaning, filtering, dedupe, structure, augmentation, split ----------------


class FilterRule(Strict):
    terms: list[str] = Field(min_length=1, description="words or phrases; a trailing * matches any ending")
    max_per_1k_words: NonNegativeFloat = Field(description="a story with more matches per 1,000 words is removed")


class DedupeParams(Strict):
    near_duplicate: float = Field(gt=0, le=1, description="TF-IDF cosine at or above which two stories are one tale told twice: the later copy is dropped")
    near_duplicate_same_title: float = Field(gt=0, le=1, description="the same, for two stories with similar titles")
    same_tale: float = Field(gt=0, le=1, description="cosine at or above which two stories are kept together in one split")

    @model_validator(mode="after")
    def _ordered(self) -> "DedupeParams":
        if self.same_tale > self.near_duplicate or self.near_duplicate_same_title > self.near_duplicate:
            raise ValueError("same_tale and near_duplicate_same_title must not exceed near_duplicate")
        return self


class AugmentParams(Strict):
    methods: list[Literal["beginning", "ending", "paraphrase", "modernise"]] = Field(
        description="augmentations applied to the train split only; [] turns augmentation off"
    )
    probability: float = Field(ge=0, le=1, description="chance that a train story gets each method")


class SplitParams(Strict):
    val: float = Field(ge=0, lt=0.5, description="fraction of tales held out for validation")
    test: float = Field(ge=0, lt=0.5, description="fraction of tales held out for testing")


class PrepareParams(Strict):
    seed: int = Field(description="seed for augmentation and the split")
    min_words: PositiveInt = Field(description="shorter stories are dropped (fragments, not tales)")
    max_words: PositiveInt = Field(description="longer stories are dropped (novellas, not tales)")
    filter: dict[str, FilterRule] = Field(description="content rules for children, by name")
    dedupe: DedupeParams
    augment: AugmentParams
    split: SplitParams

    @model_validator(mode="after")
    def _ranges(self) -> "PrepareParams":
        if self.min_words >= self.max_words:
            raise ValueError("min_words must be below max_words")
        if self.split.val + self.split.test >= 0.8:
            raise ValueError("split.val + split.test must leave at least 20% for training")
        return self


# --- model: the tokenizer stage and the architecture trained by `train` --------------

SCRATCH = "scratch"
# Hub models known to work, with their context length, so params can be checked offline.
KNOWN_BASES = {
    "gpt2": 1024,
    "gpt2-medium": 1024,
    "gpt2-large": 1024,
    "gpt2-xl": 1024,
    "distilgpt2": 1024,
    "EleutherAI/gpt-neo-125m": 2048,
    "EleutherAI/gpt-neo-1.3B": 2048,
}


class ModelParams(Strict):
    base: str = Field(
        description=f"'{SCRATCH}' (train a small GPT-2 and its tokenizer from nothing), a hub model "
        f"({', '.join(KNOWN_BASES)}), or a local folder written by save_pretrained"
    )
    vocab_size: int = Field(ge=256, le=65536, description="scratch only: BPE vocabulary learned from the train split")
    context: PositiveInt = Field(description="longest sequence the model sees (scratch: its n_positions)")
    n_layer: PositiveInt = Field(description="scratch only: transformer blocks")
    n_head: PositiveInt = Field(description="scratch only: attention heads per block")
    n_embd: PositiveInt = Field(description="scratch only: width of the residual stream")
    dropout: float = Field(ge=0, lt=1, description="scratch only: dropout on embeddings, attention and MLP")

    @field_validator("base")
    @classmethod
    def _known_base(cls, base: str) -> str:
        if base != SCRATCH:
            base_context(base)
        return base

    @model_validator(mode="after")
    def _shape(self) -> "ModelParams":
        if self.base == SCRATCH:
            if self.n_embd % self.n_head:
                raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
            return self
        limit = base_context(self.base)
        if self.context > limit:
            raise ValueError(f"context: {self.context} is longer than {self.base}'s context of {limit}")
        return self

    @property
    def scratch(self) -> bool:
        return self.base == SCRATCH


def base_context(base: str) -> int:
    """The context length of a pretrained base; raises for a base that is neither known nor local."""
    if base in KNOWN_BASES:
        return KNOWN_BASES[base]
    config = Path(base) / "config.json"
    if config.is_file():
        values = json.loads(config.read_text(encoding="utf-8"))
        return int(values.get("n_positions") or values.get("max_position_embeddings") or 0)
    raise ValueError(
        f"unknown base {base!r}: use '{SCRATCH}', one of {', '.join(KNOWN_BASES)}, "
        "or a folder holding a save_pretrained model (config.json)"
    )


# --- train: broad fine-tuning (the spec's finetune.py) and the specialised stages -------


class Hyperparams(Strict):
    learning_rate: PositiveFloat = Field(description="peak learning rate, decayed linearly to 0 after warmup")
    warmup_steps: NonNegativeInt = Field(description="optimizer steps of linear warmup")
    weight_decay: NonNegativeFloat = Field(description="AdamW weight decay (not on biases and norms)")
    batch_size: PositiveInt = Field(description="blocks per device per micro-batch")
    grad_accum: PositiveInt = Field(description="micro-batches per optimizer step")
    epochs: PositiveInt = Field(description="passes over the train blocks (early stopping may end sooner)")
    max_steps: NonNegativeInt = Field(description="stop after this many optimizer steps; 0 = no limit")
    block_size: PositiveInt = Field(description="tokens per training block, clamped to model.context")


class TrainParams(Strict):
    seed: int = Field(description="seed for initialisation, data order and dropout")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        description="auto = bf16 autocast where the CPU/GPU runs it fast, else fp32"
    )
    eval_every: PositiveInt = Field(description="optimizer steps between validation-loss checks")
    patience: NonNegativeInt = Field(description="stop after this many checks without a better val loss; 0 = never")
    checkpoint_every: PositiveInt = Field(description="optimizer steps between resumable checkpoints")
    sample_every: PositiveInt = Field(description="optimizer steps between logged sample stories")
    sample_prompts: list[str] = Field(description="story titles used for the periodic samples")
    scratch: Hyperparams = Field(description="used when model.base is scratch")
    pretrained: Hyperparams = Field(description="used for a hub or local base (the spec's values)")


class SliceFilter(Strict):
    age_group: Literal["3-5", "6-8", "9-12"] | None = None
    theme: str | None = None
    style: Literal["fairy_tale", "fable", "bedtime"] | None = None

    @model_validator(mode="after")
    def _one(self) -> "SliceFilter":
        if sum(v is not None for v in (self.age_group, self.theme, self.style)) != 1:
            raise ValueError("give exactly one of age_group, theme or style")
        return self


class SpecialiseParams(Strict):
    learning_rate: PositiveFloat = Field(description="peak learning rate of the specialised fine-tuning")
    epochs: PositiveInt = Field(description="passes over the slice's train blocks")
    groups: dict[str, SliceFilter] = Field(description="stage 2: one model per age group or theme slice")
    styles: dict[str, SliceFilter] = Field(description="stage 3: one model per narrative style slice")


class GenerateParams(Strict):
    seed: int = Field(description="seed for sampling")
    do_sample: bool = Field(description="sample (true) or decode greedily (false)")
    temperature: PositiveFloat = Field(le=2, description="softmax temperature; the spec recommends 0.7-0.9")
    top_k: NonNegativeInt = Field(description="keep the k likeliest tokens; 0 = off")
    top_p: float = Field(gt=0, le=1, description="nucleus sampling mass")
    no_repeat_ngram_size: NonNegativeInt = Field(description="never repeat an n-gram of this size; 0 = off")
    repetition_penalty: float = Field(ge=1, description="penalty on tokens already generated; 1 = off")
    min_new_tokens: NonNegativeInt = Field(description="shortest story, in tokens")
    max_new_tokens: PositiveInt = Field(description="longest story, in tokens")

    @model_validator(mode="after")
    def _lengths(self) -> "GenerateParams":
        if self.min_new_tokens > self.max_new_tokens:
            raise ValueError("min_new_tokens must not exceed max_new_tokens")
        return self


# --- evaluate: automated metrics, samples and the human-evaluation sheet -------------


class EvaluateParams(Strict):
    stride: PositiveInt = Field(description="sliding-window stride in tokens for perplexity (HF's perplexity guide)")
    prompt_fraction: float = Field(gt=0, lt=1, description="share of each test story given as the BLEU/ROUGE prompt")
    max_stories: NonNegativeInt = Field(description="test stories used for BLEU/ROUGE and narrative metrics; 0 = all")
    sample_prompts: list[str] = Field(min_length=1, description="titles of the sample stories written to evaluation_results/")
    samples_per_prompt: PositiveInt = Field(description="stories generated per sample prompt")


class HumanEvalParams(Strict):
    baseline: str = Field(min_length=1, description="model folder compared blind against models/storyteller")
    prompts: list[str] = Field(min_length=1, description="titles both models write a story for")
    scale_min: int = Field(description="lowest rating on the rubric's scale")
    scale_max: int = Field(description="highest rating on the rubric's scale")
    seed: int = Field(description="seed for sampling and for shuffling the sheet")

    @model_validator(mode="after")
    def _scale(self) -> "HumanEvalParams":
        if self.scale_min >= self.scale_max:
            raise ValueError("scale_min must be below scale_max")
        return self


# --- export and distill: deployment artefacts ------------------------------------------


class ExportParams(Strict):
    opset: int = Field(ge=14, le=21, description="ONNX opset of the exported graphs")
    parity_tolerance: PositiveFloat = Field(description="largest |logit difference| allowed between PyTorch and ONNX fp32")
    latency_contexts: list[PositiveInt] = Field(min_length=1, description="context lengths at which per-token latency is timed")
    latency_tokens: PositiveInt = Field(description="tokens generated per latency measurement")
    throughput_batch: PositiveInt = Field(description="batch size of the throughput measurement")
    max_bpb_stories: NonNegativeInt = Field(description="test stories used for each variant's bits per byte; 0 = all")


class DistillParams(Strict):
    seed: int = Field(description="seed for the student's initialisation and data order")
    temperature: PositiveFloat = Field(description="softmax temperature of the teacher's soft targets")
    alpha: float = Field(ge=0, le=1, description="weight of the soft-target loss; 1 - alpha goes to the true next token")
    n_layer: PositiveInt = Field(description="student transformer blocks")
    n_head: PositiveInt = Field(description="student attention heads")
    n_embd: PositiveInt = Field(description="student width")
    learning_rate: PositiveFloat = Field(description="student peak learning rate")
    epochs: PositiveInt = Field(description="passes over the train blocks")
    batch_size: PositiveInt = Field(description="blocks per step")
