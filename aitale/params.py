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
from aitale.labels import AGE_GROUPS, STYLES, THEMES

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
        section = schema.model_validate(values)
    except ValidationError as err:
        problems = []
        for error in err.errors():
            key = ".".join([*([name] if name else []), *(str(part) for part in error["loc"])]) or "(top level)"
            # a cross-field rule's message names its keys and values; a single key's names the value it got
            got = "" if error["type"] == "missing" or isinstance(error["input"], dict) else f" (got {error['input']!r})"
            problems.append(f"  {key}: {error['msg'].removeprefix('Value error, ')}{got}")
        raise ParamsError(f"{source}: invalid params\n" + "\n".join(problems)) from None
    return section


def load_section(
    schema: type[Section],
    name: str,
    path: str | Path = "params.yaml",
    overrides: dict[str, Any] | None = None,
) -> Section:
    """Read section ``name`` of ``path``, apply dotted ``overrides``, and validate it."""
    values = read_params(path).get(name)
    for dotted, value in (overrides or {}).items():
        values = set_dotted(values or {}, dotted, value)
    return validate(schema, name, values, source=str(path))


def set_dotted(mapping: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A copy of ``mapping`` with the key ``a.b.c`` set to ``value`` (missing levels are created)."""
    head, _, rest = dotted.partition(".")
    updated = dict(mapping)
    updated[head] = set_dotted(updated.get(head) or {}, rest, value) if rest else value
    return updated


def load_params(path: str | Path = "params.yaml") -> Params:
    """Every section of ``path`` validated at once; the error lists each bad key with its value."""
    return validate(Params, "", read_params(path), source=str(path))


# --- data: where the sources come from (download stage) -------------------------------


class GutenbergParams(Strict):
    books: list[PositiveInt] = Field(
        description="Project Gutenberg ebook ids to download; [] keeps the pipeline offline"
    )
    mirror: str = Field(
        min_length=1,
        description="URL template with {id} (http, https or file), or a local folder holding pg{id}.txt files",
    )
    sha256: dict[PositiveInt, str] = Field(
        description="expected sha256 per book id; books without a pin are not checked"
    )
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


class DedupeParams(Strict):
    near_duplicate: float = Field(
        gt=0,
        le=1,
        description="TF-IDF cosine at or above which two stories are one tale told twice: the later copy is dropped",
    )
    near_duplicate_same_title: float = Field(gt=0, le=1, description="the same, for two stories with similar titles")
    same_tale: float = Field(
        gt=0, le=1, description="cosine at or above which two stories are kept together in one split"
    )

    @model_validator(mode="after")
    def _ordered(self) -> DedupeParams:
        if self.same_tale > self.near_duplicate or self.near_duplicate_same_title > self.near_duplicate:
            raise ValueError("same_tale and near_duplicate_same_title must not exceed near_duplicate")
        return self


class AugmentParams(Strict):
    methods: list[Literal["beginning", "ending", "paraphrase", "modernise"]] = Field(
        description=(
            "augmentations applied to the train split only, each adding a copy of a story: beginning (an opening "
            "formula in the story's register), ending (a closing line in its register), paraphrase "
            "(part-of-speech-aware synonyms), modernise (archaic diction: thou art -> you are); copies the content "
            "screen fails are dropped; [] turns augmentation off (benchmarks/augment_effect.py measures each)"
        )
    )
    probability: float = Field(ge=0, le=1, description="chance that a train story gets each method's copy")


class SplitParams(Strict):
    val: float = Field(ge=0, lt=0.5, description="fraction of tales held out for validation")
    test: float = Field(ge=0, lt=0.5, description="fraction of tales held out for testing")
    holdout_books: list[PositiveInt] = Field(
        description="Gutenberg ids whose stories go to no split but holdout.jsonl (leave-one-book-out): "
        "evaluate's out-of-collection bits per byte"
    )
    holdout_custom: float = Field(
        ge=0,
        lt=0.5,
        description="share of the custom stories (whole tales, by a seeded hash) held out to holdout.jsonl",
    )


class ThemeTaggerParams(Strict):
    share: float = Field(gt=0, lt=1, description="a book story gets a theme where it ranks in this top share for it")
    min_stories: PositiveInt = Field(description="themes of fewer custom stories are never predicted")
    most: PositiveInt = Field(description="at most this many themes per story, the likeliest")


class PrepareParams(Strict):
    seed: int = Field(description="seed for augmentation and the split")
    min_words: PositiveInt = Field(description="shorter stories are dropped (fragments, not tales)")
    max_words: PositiveInt = Field(
        description="longer stories (a whole tale, story or chapter) are dropped (a book its splitter missed)"
    )
    part_words: PositiveInt = Field(
        description="longer stories are cut at paragraph breaks into parts of about equal length, at most this many "
        "words each, titled with their number ('The Snow Queen (part 2)'), held in one split"
    )
    dedupe: DedupeParams
    themes: ThemeTaggerParams = Field(
        description="themes for book stories, predicted from the custom stories' (aitale/data/themes.py)"
    )
    augment: AugmentParams
    split: SplitParams

    @model_validator(mode="after")
    def _ranges(self) -> PrepareParams:
        if self.min_words >= self.max_words:
            raise ValueError("min_words must be below max_words")
        if self.part_words < 2 * self.min_words:
            raise ValueError("part_words must be at least twice min_words (a part is at least half of part_words)")
        split = self.split
        if split.val + split.test + split.holdout_custom >= 0.8:
            raise ValueError("split.val + split.test + split.holdout_custom must leave at least 20% for training")
        return self


AgeGroup = Literal[AGE_GROUPS]  # type: ignore[valid-type]
Style = Literal[STYLES]  # type: ignore[valid-type]
Theme = Literal[THEMES]  # type: ignore[valid-type]


# --- safety: the content screen (aitale/safety) every text for a child passes -----------------


SAFETY_FEATURES = ("pairs", "concepts", "relations", "chars", "profanity", "exceptions", "idioms")


class OperatingPoint(Strict):
    recall: float = Field(gt=0, le=1, description="the least recall the threshold keeps in cross-validation")
    precision: float = Field(gt=0, le=1, description="a lower threshold is taken where it keeps this precision")


class SafetyParams(Strict):
    seed: int = Field(description="seed of the cross-validation folds and the classifier's solver")
    passage_sentences: int = Field(
        ge=1, le=4, description="a text is judged in passages of at most this many sentences"
    )
    regularization: PositiveFloat = Field(description="inverse L2 strength (scikit-learn's C) of the classifier")
    min_df: PositiveInt = Field(description="a word or word pair in fewer labelled passages is not a feature")
    features: list[Literal[SAFETY_FEATURES]] = Field(  # type: ignore[valid-type]
        description="what the judge uses beside lemmas and the rules (aitale/safety/classifier.py)"
    )
    folds: int = Field(ge=2, le=10, description="cross-validation folds of the train part that choose the thresholds")
    operating_point: dict[AgeGroup, OperatingPoint] = Field(
        description="per age group: the recall (then precision) the cross-validated thresholds aim at"
    )
    stories_pass: float = Field(
        ge=0, le=1, description="share of the project's own stories (data/stories) that must pass for their age group"
    )

    @field_validator("operating_point")
    @classmethod
    def _every_policy(cls, points: dict[str, OperatingPoint]) -> dict[str, OperatingPoint]:
        if missing := [age for age in AGE_GROUPS if age not in points]:
            raise ValueError(f"{', '.join(missing)}: every age group needs its operating point")
        return points


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
    # sequence-to-sequence: the request in, the story out (relative positions: the context is the tokenizer's)
    "t5-small": 512,
    "t5-base": 512,
    "google-t5/t5-small": 512,
    "google-t5/t5-base": 512,
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
    dropout: float = Field(
        ge=0, lt=1, description="scratch only: dropout on embeddings and residuals (MLP, attention out)"
    )
    attn_dropout: float = Field(
        ge=0, lt=1, description="scratch only: dropout on attention probabilities; 0 lets SDPA use its fused kernel"
    )

    @field_validator("base")
    @classmethod
    def _known_base(cls, base: str) -> str:
        if base != SCRATCH:
            base_context(base)
        return base

    @model_validator(mode="after")
    def _shape(self) -> ModelParams:
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
        positions = values.get("n_positions") or values.get("max_position_embeddings")
        if positions:
            return int(positions)
        if values.get("is_encoder_decoder") or values.get("model_type") == "t5":
            return _tokenizer_context(Path(base))
        raise ValueError(f"{config}: no n_positions or max_position_embeddings, so the model's context is unknown")
    raise ValueError(
        f"unknown base {base!r}: use '{SCRATCH}', one of {', '.join(KNOWN_BASES)}, "
        "or a folder holding a save_pretrained model (config.json)"
    )


def _tokenizer_context(folder: Path) -> int:
    """A relative-position model's context (T5: no position table), as its tokenizer states it, else 512, the
    length T5 was trained at (what :data:`KNOWN_BASES` gives the hub's T5s)."""
    tokenizer = folder / "tokenizer_config.json"
    values = json.loads(tokenizer.read_text(encoding="utf-8")) if tokenizer.is_file() else {}
    stated = values.get("model_max_length")
    return int(stated) if isinstance(stated, int) and 0 < stated < 1_000_000 else 512


# --- train: broad fine-tuning (the spec's finetune.py) and the specialised stages -------


class Hyperparams(Strict):
    learning_rate: PositiveFloat = Field(description="peak learning rate, decayed to 0 after warmup (see schedule)")
    warmup_steps: NonNegativeInt = Field(description="optimizer steps of linear warmup")
    schedule: Literal["linear", "cosine"] = Field(
        description="learning-rate decay from the peak to 0 after warmup: a straight line, or a half cosine"
    )
    weight_decay: NonNegativeFloat = Field(description="AdamW weight decay (not on biases and norms)")
    batch_size: PositiveInt = Field(description="blocks per device per micro-batch")
    grad_accum: PositiveInt = Field(description="micro-batches per optimizer step")
    epochs: PositiveInt = Field(description="passes over the train blocks (early stopping may end sooner)")
    max_steps: NonNegativeInt = Field(description="stop after this many optimizer steps; 0 = no limit")
    block_size: PositiveInt = Field(description="tokens per training block, clamped to model.context")


class TrainParams(Strict):
    hyperparams: Literal["scratch", "pretrained"] = Field(
        description="which set below applies: scratch (model.base scratch) or pretrained (a hub or local base)"
    )
    seed: int = Field(description="seed for initialisation, data order and dropout")
    precision: Literal["fp32", "bf16"] = Field(
        description="fp32, or bf16 autocast: chosen here, never by the machine, so every CPU gives the same weights "
        "(bf16 is fast only where the hardware has it natively: GPUs, and CPUs run with AITALE_NATIVE_MATH=1)"
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        description="where training runs: auto = the GPU when there is one (under torchrun, LOCAL_RANK's), else CPU"
    )
    eval_every: PositiveInt = Field(description="optimizer steps between validation-loss checks")
    patience: NonNegativeInt = Field(description="stop after this many checks without a better val loss; 0 = never")
    checkpoint_every: PositiveInt = Field(description="optimizer steps between resumable checkpoints")
    sample_every: PositiveInt = Field(description="optimizer steps between logged sample stories")
    sample_prompts: list[str] = Field(description="story titles used for the periodic samples")
    control_dropout: float = Field(
        ge=0,
        lt=1,
        description="share of train stories seen without their control "
        "line (age group, style, themes), so the model also writes unconditioned",
    )
    scratch: Hyperparams = Field(description="used when model.base is scratch")
    pretrained: Hyperparams = Field(description="used for a hub or local base (the spec's values)")

    @property
    def hp(self) -> Hyperparams:
        """The hyperparameters in effect (``hyperparams`` names them)."""
        return self.scratch if self.hyperparams == "scratch" else self.pretrained


class LoraParams(Strict):
    enabled: bool = Field(description="train low-rank adapters on a frozen base instead of every weight")
    r: PositiveInt = Field(description="rank of each adapter")
    alpha: PositiveFloat = Field(description="adapter scale numerator: the update is scaled by alpha / r")
    dropout: float = Field(ge=0, lt=1, description="dropout on the adapters' input")
    target_modules: list[str] = Field(
        description="module names that get adapters; [] = peft's choice for the architecture "
        "(GPT-2: c_attn; GPT-Neo: q_proj, v_proj; T5: q, v)"
    )


class MemoryParams(Strict):
    """How a model too large for the device's memory still trains (train and specialise stages)."""

    gradient_checkpointing: bool = Field(
        description="recompute each block's activations in the backward pass instead of keeping them"
    )
    bf16_frozen: bool = Field(
        description="with LoRA on a device that trains in bf16 (train.precision), hold the frozen base in bf16"
    )
    lora: LoraParams = Field(description="LoRA adapters (peft); merged into the weights when the model is saved")
    fsdp: bool = Field(
        description="under torchrun, shard the weights, gradients and optimizer state across the processes "
        "(FSDP) instead of a full copy in each (DDP); needs more than one process, and not with lora.enabled"
    )

    @model_validator(mode="after")
    def _fsdp_alone(self) -> MemoryParams:
        if self.fsdp and self.lora.enabled:
            raise ValueError(
                "fsdp and lora.enabled: not both (LoRA already drops the base's gradients and AdamW state, "
                "and its adapters are merged on the whole model, not on shards): turn one of them off"
            )
        return self


BROAD = "storyteller"  # the broad model every specialisation chain starts from


class ChainStage(Strict):
    parent: str = Field(description=f"the model this one is fine-tuned from: {BROAD} or an earlier chain entry")
    age_group: AgeGroup | None = Field(None, description="the slice: train stories of this age group")
    theme: Theme | None = Field(None, description="the slice: train stories with this theme")
    style: Style | None = Field(None, description="the slice: train stories of this style")

    @model_validator(mode="after")
    def _some_slice(self) -> ChainStage:
        if self.age_group is None and self.theme is None and self.style is None:
            raise ValueError("give the slice: at least one of age_group, theme or style")
        return self

    @property
    def slice(self) -> dict[str, str]:
        return self.model_dump(exclude_none=True, exclude={"parent"})

    def selects(self, record: dict) -> bool:
        """Whether a story record belongs to this slice (every label given must match)."""
        return (
            (self.age_group is None or record["age_group"] == self.age_group)
            and (self.theme is None or self.theme in record["themes"])
            and (self.style is None or record["style"] == self.style)
        )


class SpecialiseParams(Strict):
    learning_rate: PositiveFloat = Field(description="peak learning rate of the specialised fine-tuning")
    epochs: PositiveInt = Field(description="passes over the slice's train blocks")
    chain: dict[str, ChainStage] = Field(
        description="the spec's stages 2 and 3: one model per entry, fine-tuned on its slice from its parent "
        "(age group or theme from the broad model, then style from one of those)"
    )

    @field_validator("chain")
    @classmethod
    def _parents_first(cls, chain: dict[str, ChainStage]) -> dict[str, ChainStage]:
        known = {BROAD}
        for name, stage in chain.items():
            if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name) or name == BROAD:
                raise ValueError(
                    f"{name!r}: a chain entry is named in lower-case letters, digits and '-', and not {BROAD!r}"
                )
            if stage.parent not in known:
                raise ValueError(f"{name}: parent {stage.parent!r} is neither {BROAD} nor an entry above it")
            known.add(name)
        return chain


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
    def _lengths(self) -> GenerateParams:
        if self.min_new_tokens > self.max_new_tokens:
            raise ValueError("min_new_tokens must not exceed max_new_tokens")
        return self


# --- evaluate: automated metrics, samples and the human-evaluation sheet -------------


class ControlParams(Strict):
    themes: list[Theme] = Field(
        min_length=1, description="themes of the control grid (each with every age group and style)"
    )
    stories_per_condition: PositiveInt = Field(
        description="stories written per request of the grid, with and without control tokens"
    )
    bootstrap_resamples: int = Field(
        ge=100, description="resamples of the paired bootstrap giving each gain's 95% interval (seeded)"
    )


class EvaluateParams(Strict):
    stride: PositiveInt = Field(description="sliding-window stride in tokens for perplexity (HF's perplexity guide)")
    prompt_fraction: float = Field(gt=0, lt=1, description="share of each test story given as the BLEU/ROUGE prompt")
    max_stories: NonNegativeInt = Field(description="test stories used for BLEU/ROUGE and narrative metrics; 0 = all")
    sample_prompts: list[str] = Field(
        min_length=1, description="titles of the sample stories written to evaluation_results/"
    )
    samples_per_prompt: PositiveInt = Field(description="stories generated per sample prompt")
    control: ControlParams = Field(description="control accuracy: stories asked for an age group, style and theme")


class ClassifyParams(Strict):
    seed: int = Field(description="seed for the heads' and baselines' solvers and the passage sample")
    regularization: PositiveFloat = Field(
        description="inverse L2 strength (scikit-learn's C) of the heads' score layers, fitted on the frozen trunk"
    )
    max_tokens: int = Field(ge=8, le=1024, description="tokens of a passage a head reads (its last ones)")
    passage_sentences: PositiveInt = Field(
        description="story passages for the theme/style/age heads: at most this many sentences"
    )
    min_theme_stories: PositiveInt = Field(description="themes of fewer train stories are left out of the theme head")
    threshold: float = Field(gt=0, lt=1, description="the theme head predicts a theme at this probability")
    max_train_passages: NonNegativeInt = Field(
        description="train each head on at most this many passages (a seeded sample); 0 = all"
    )
    fine_tune_epochs: NonNegativeInt = Field(
        description="also fine-tune each head's trunk and score layer this many epochs, and keep whichever of "
        "probe and fine-tuned head scores better on the held-out stories; 0 = the linear probe only"
    )
    fine_tune_learning_rate: PositiveFloat = Field(description="AdamW learning rate of the fine-tuning")
    fine_tune_batch_size: PositiveInt = Field(description="passages per fine-tuning step")


class HumanEvalParams(Strict):
    baseline: str = Field(min_length=1, description="model folder compared blind against models/storyteller")
    prompts: list[str] = Field(min_length=1, description="titles both models write a story for")
    scale_min: int = Field(description="lowest rating on the rubric's scale")
    scale_max: int = Field(description="highest rating on the rubric's scale")
    seed: int = Field(description="seed for sampling and for shuffling the sheet")

    @model_validator(mode="after")
    def _scale(self) -> HumanEvalParams:
        if self.scale_min >= self.scale_max:
            raise ValueError("scale_min must be below scale_max")
        return self


# --- export and distill: deployment artefacts ------------------------------------------


class ExportParams(Strict):
    opset: int = Field(ge=14, le=21, description="ONNX opset of the exported graphs")
    parity_tolerance: PositiveFloat = Field(
        description="largest |logit difference| allowed between PyTorch and ONNX fp32"
    )
    latency_contexts: list[PositiveInt] = Field(
        min_length=1, description="context lengths at which per-token latency is timed"
    )
    latency_tokens: PositiveInt = Field(description="tokens generated per latency measurement")
    throughput_batch: PositiveInt = Field(description="batch size of the throughput measurement")
    max_bpb_stories: NonNegativeInt = Field(description="test stories used for each variant's bits per byte; 0 = all")


class DistillParams(Strict):
    seed: int = Field(description="seed for the student's initialisation and data order")
    temperature: PositiveFloat = Field(description="softmax temperature of the teacher's soft targets")
    alpha: float = Field(
        ge=0, le=1, description="weight of the soft-target loss; 1 - alpha goes to the true next token"
    )
    n_layer: PositiveInt = Field(description="student transformer blocks")
    n_head: PositiveInt = Field(description="student attention heads")
    n_embd: PositiveInt = Field(description="student width")
    learning_rate: PositiveFloat = Field(description="student peak learning rate")
    epochs: PositiveInt = Field(description="passes over the train blocks")
    batch_size: PositiveInt = Field(description="blocks per step")

    @model_validator(mode="after")
    def _heads(self) -> DistillParams:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        return self


# --- the whole file: what `stages.check` validates before any other stage runs -----------


def hyperparams_mismatch(model: ModelParams, train: TrainParams) -> str | None:
    """Why ``train.hyperparams`` does not fit ``model.base`` (None when it does)."""
    wanted = "scratch" if model.scratch else "pretrained"
    if train.hyperparams == wanted:
        return None
    return (
        f"train.hyperparams is {train.hyperparams!r} but model.base {model.base!r} trains with the {wanted!r} "
        f"set: set train.hyperparams: {wanted}"
    )


class Params(Strict):
    data: DataParams
    prepare: PrepareParams
    safety: SafetyParams
    model: ModelParams
    train: TrainParams
    memory: MemoryParams
    specialise: SpecialiseParams
    generate: GenerateParams
    evaluate: EvaluateParams
    classify: ClassifyParams
    human_eval: HumanEvalParams
    export: ExportParams
    distill: DistillParams

    @model_validator(mode="after")
    def _across_sections(self) -> Params:
        if problem := hyperparams_mismatch(self.model, self.train):
            raise ValueError(problem)
        if missing := sorted(set(self.prepare.split.holdout_books) - set(self.data.gutenberg.books)):
            raise ValueError(f"prepare.split.holdout_books: {missing} not in data.gutenberg.books, so never downloaded")
        student, teacher = self.distill, self.model
        if teacher.scratch and student.n_layer >= teacher.n_layer and student.n_embd >= teacher.n_embd:
            raise ValueError(
                f"distill: a student of {student.n_layer} layers x {student.n_embd} wide is not smaller "
                f"than the model's {teacher.n_layer} x {teacher.n_embd}"
            )
        return self
