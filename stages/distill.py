"""Distill stage (optional): a smaller GPT-2 student trained on the teacher's logits.

The student has the ``distill`` section's n_layer/n_head/n_embd and the teacher's tokenizer,
vocabulary and context. Its loss is alpha * T^2 * KL(teacher/T || student/T) plus
(1 - alpha) * cross-entropy on the true next token (see aitale/modeling/distill.py). Weight decay and
warmup come from the train hyperparams in effect (``train.hyperparams``), autocast from
``train.precision``, the bits-per-byte stride from ``evaluate.stride``. The student is saved with
the teacher's tokenizer and generation_config, so ``pipeline("text-generation", model=OUTPUT_DIR)``
loads it.

The metrics (sizes, test bits per byte, val loss, student/teacher ratios) are deterministic:
the same params and data give the same file. Greedy generation speed, teacher against
student, is timed with --bench (or --speed-tokens N) and written to benchmarks/results/distill_speed.json.

    python -m stages.distill --teacher models/storyteller --train data/processed/train.jsonl \\
        --val data/processed/val.jsonl --test data/processed/test.jsonl \\
        --output-dir models/student --metrics metrics/distill.json
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path

from aitale import cli
from aitale.errors import ParamsError
from aitale.machine import math_settings
from aitale.params import DistillParams, EvaluateParams, TrainParams, load_section

# torch, transformers and the training code are imported in run(), once the params are
# valid: a bad value or --help answers in a second instead of after loading torch.

log = logging.getLogger("distill")

DEFAULT_BENCH = "benchmarks/results/distill_speed.json"
SPEED_TOKENS = 128  # greedy tokens generated per timing (fewer if the context is shorter)
SPEED_REPEATS = 5


def main(argv: list[str] | None = None) -> int:
    parser = cli.stage_parser(__doc__, DistillParams, "distill")
    parser.add_argument("--teacher", required=True, help="the teacher's folder (save_pretrained, with its tokenizer)")
    parser.add_argument("--train", required=True, help="train split (jsonl)")
    parser.add_argument("--val", required=True, help="validation split (jsonl): val loss of teacher and student")
    parser.add_argument("--test", required=True, help="test split (jsonl): bits per byte of teacher and student")
    parser.add_argument("--output-dir", required=True, help="where the student is saved (save_pretrained)")
    parser.add_argument("--metrics", required=True, help="JSON file for the (deterministic) distillation metrics")
    parser.add_argument(
        "--bench", action="store_true", help="also write the generation-speed figures to --bench-output"
    )
    parser.add_argument("--bench-output", default=DEFAULT_BENCH, help="(with --bench) default: %(default)s")
    parser.add_argument(
        "--speed-tokens",
        type=int,
        help=f"greedy tokens per speed timing, at most the context allows; 0 skips the timing (default: {SPEED_TOKENS} "
        "with --bench, else 0: the pipeline's run spends no time on figures that are no output)",
    )
    args = parser.parse_args(argv)
    cli.setup_logging()
    began = time.perf_counter()
    try:
        params = load_section(DistillParams, "distill", args.config, cli.overrides(args))
        train_params = load_section(TrainParams, "train", args.config)
        evaluate = load_section(EvaluateParams, "evaluate", args.config)
    except ParamsError as err:
        log.error("%s", err)
        return 2
    missing = [
        f"--{name.replace('_', '-')} {path}"
        for name, path in (
            ("teacher", Path(args.teacher) / "config.json"),
            ("train", args.train),
            ("val", args.val),
            ("test", args.test),
        )
        if not Path(path).is_file()
    ]
    if missing:
        log.error("not found: %s (run the train and package stages first)", ", ".join(missing))
        return 2
    if args.speed_tokens is None:
        args.speed_tokens = SPEED_TOKENS if args.bench else 0
    if args.bench and args.speed_tokens < 1:
        log.error("--bench needs --speed-tokens of at least 1")
        return 2
    return run(args, params, train_params, evaluate, began)


def run(args, params: DistillParams, train_params: TrainParams, evaluate: EvaluateParams, began: float) -> int:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from aitale.io import read_jsonl
    from aitale.modeling import device as rt
    from aitale.modeling.blocks import load_blocks
    from aitale.modeling.distill import Recipe, build_student, distill, parameter_count, scores
    from aitale.modeling.model import model_context
    from aitale.modeling.wandb_run import start_run

    runtime = rt.start(train_params.precision)
    tokenizer = AutoTokenizer.from_pretrained(args.teacher)
    teacher = AutoModelForCausalLM.from_pretrained(args.teacher).to(runtime.device).eval()
    torch.manual_seed(params.seed)
    student = build_student(teacher, params).to(runtime.device)
    if parameter_count(student) >= parameter_count(teacher):
        _too_large(args.config, params, parameter_count(student), parameter_count(teacher))
        return 2

    block_size = min(train_params.hp.block_size, model_context(teacher))
    train = load_blocks(args.train, tokenizer, block_size)
    val = load_blocks(args.val, tokenizer, block_size)
    texts = [record["structured"] for record in read_jsonl(args.test)]

    def score(model) -> dict:
        return scores(model, tokenizer, val, texts, params.batch_size, evaluate.stride, runtime)

    scored = {"teacher": score(teacher), "untrained_student": score(student)}
    log.info(
        "teacher: %d parameters, val loss %.4f, test %.4f bits/byte",
        parameter_count(teacher),
        scored["teacher"]["val_loss"],
        scored["teacher"]["test_bits_per_byte"],
    )

    recipe = Recipe(weight_decay=train_params.hp.weight_decay, warmup_steps=train_params.hp.warmup_steps)
    config = {"distill": params.model_dump(), **asdict(recipe), "block_size": block_size, "stride": evaluate.stride}
    wandb_run = start_run("distill", config)
    training = distill(student, teacher, train, params, recipe, runtime, wandb_run)
    scored["student"] = score(student)
    if (Path(args.teacher) / "generation_config.json").is_file():
        student.generation_config = GenerationConfig.from_pretrained(args.teacher)
    run_figures = _figures(params, recipe, training, runtime, block_size, train, val, len(texts))
    metrics = _save(args, teacher, student, tokenizer, scored, run_figures)
    speed = _speed(args, teacher, student, tokenizer, evaluate.sample_prompts[0]) if args.speed_tokens > 0 else {}
    wandb_run.finish(summary={**metrics, "generation_speed": speed})
    log.info("done in %.0fs", time.perf_counter() - began)
    rt.stop(runtime)
    return 0


def _figures(params, recipe, training: dict, runtime, block_size: int, train, val, test_stories: int) -> dict:
    """The metrics' ``distill`` entry: the params, the training's figures and what the run was made of."""
    return {
        **params.model_dump(),
        **training,
        "block_size": block_size,
        "train_blocks": len(train),
        "train_tokens": train.tokens,
        "val_blocks": len(val),
        "test_stories": test_stories,
        "precision": str(runtime.dtype or "fp32").removeprefix("torch."),
        **math_settings(),
        "weight_decay": recipe.weight_decay,
        "warmup_steps": recipe.warmup_steps,
    }


def _too_large(config: str, params: DistillParams, student: int, teacher: int) -> None:
    log.error(
        "%s: invalid params\n  distill: a student of n_layer %d, n_head %d, n_embd %d has %d parameters, "
        "not fewer than the teacher's %d; make it smaller",
        config,
        params.n_layer,
        params.n_head,
        params.n_embd,
        student,
        teacher,
    )


def _save(args, teacher, student, tokenizer, scored: dict, run_figures: dict) -> dict:
    """The student (with the teacher's tokenizer and a model card) to --output-dir and the metrics to --metrics;
    returns the metrics."""
    from aitale.io import atomic_dir, write_json
    from aitale.modeling.distill import described, ratios

    metrics = {
        "teacher": described(teacher, args.teacher, scored["teacher"]),
        "untrained_student": scored["untrained_student"],
        "distill": run_figures,
    }
    with atomic_dir(args.output_dir) as staging:
        student.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        metrics["student"] = described(student, staging, scored["student"])
        metrics["student_over_teacher"] = ratios(metrics["student"], metrics["teacher"])
        (staging / "README.md").write_text(_model_card(args.output_dir, args.teacher, metrics), encoding="utf-8")
    write_json(args.metrics, metrics)
    ratio = metrics["student_over_teacher"]
    log.info(
        "student: %d parameters (x%.3f), val loss %.4f, test %.4f bits/byte (x%.3f; untrained %.4f)",
        metrics["student"]["parameters"],
        ratio["parameters"],
        scored["student"]["val_loss"],
        scored["student"]["test_bits_per_byte"],
        ratio["test_bits_per_byte"],
        scored["untrained_student"]["test_bits_per_byte"],
    )
    return metrics


def _speed(args, teacher, student, tokenizer, title: str) -> dict:
    """Greedy generation speed of both models on the same prompt; logged and returned, never in the metrics."""
    import torch

    from aitale.data.structure import prompt
    from aitale.io import write_text
    from aitale.machine import describe
    from aitale.modeling.distill import generation_speed

    text = prompt(title)
    models = {"teacher": teacher, "student": student}
    # Timed on one thread and on torch's default: one-token decoding steps of small models are
    # too short to gain much from more threads, and on a busy machine each parallel op waits
    # for every thread to be scheduled, which the one-thread figure does not.
    speed = {}
    for threads in sorted({1, torch.get_num_threads()}):
        figures = generation_speed(models, tokenizer, text, args.speed_tokens, SPEED_REPEATS, threads=threads)
        speedup = figures["student"]["tokens_per_second"] / figures["teacher"]["tokens_per_second"]
        log.info(
            "greedy generation, %d new tokens after %r, %d thread(s), best of %d: teacher %.1f tokens/s, "
            "student %.1f tokens/s (x%.2f; medians %.1f and %.1f)",
            figures["student"]["new_tokens"],
            text,
            threads,
            SPEED_REPEATS,
            figures["teacher"]["tokens_per_second"],
            figures["student"]["tokens_per_second"],
            speedup,
            figures["teacher"]["tokens_per_second_median"],
            figures["student"]["tokens_per_second_median"],
        )
        speed[f"threads_{threads}"] = {"speedup_student_over_teacher": round(speedup, 3), **figures}
    log.info("student's greedy continuation: %r", figures["student"]["text"][:200])
    speed = {"prompt": text, "decoding": "greedy, fp32, KV cache", "speed": speed}
    if args.bench:
        write_text(
            args.bench_output,
            json.dumps(
                {
                    "benchmark": "stages.distill --bench",
                    "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "machine": describe(),
                    "teacher": args.teacher,
                    "student": args.output_dir,
                    **speed,
                },
                indent=2,
            )
            + "\n",
        )
        log.info("speed written to %s", args.bench_output)
    return speed["speed"]


def _model_card(path: str, teacher: str, metrics: dict) -> str:
    from aitale.export.model_card import model_card

    shape = metrics["student"]
    summary = (
        f"A {shape.get('n_layer')}-layer, {shape.get('n_embd')}-wide GPT-2 trained on the logits of the "
        f"teacher `{teacher}` (knowledge distillation, `python -m stages.distill`), with the teacher's "
        "tokenizer and generation settings."
    )
    return model_card(f"{Path(path).name} (distilled)", path, summary, metrics, tags=["distillation"])


if __name__ == "__main__":
    sys.exit(main())
