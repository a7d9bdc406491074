"""Evaluate stage: how well the published model tells the test split's stories.

Perplexity and bits per byte (sliding window, overall and per collection); BLEU and ROUGE
of continuations; the narrative metrics on the model's stories and on the real ones, with
the rates at which each metric tells a real story from a corrupted copy; sample stories
in Markdown and HTML; the share of sample stories the content screen passes for each age group;
and the data behind the plots declared in ``dvc.yaml``. The model writes with the settings it ships
with (its ``generation_config.json``), seeded from ``generate.seed``. The time each
part took goes to ``--speed``, apart from the metrics, which are the same on every run.

    python -m stages.evaluate --model-path models/storyteller \\
        --test-dataset data/processed/test.jsonl --screen models/safety \\
        --labelled data/safety/passages.jsonl --output-dir evaluation_results
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path

from transformers import AutoTokenizer

from aitale import cli
from aitale.errors import ParamsError, SourceError
from aitale.evaluation import metrics as registry
from aitale.evaluation import suite
from aitale.evaluation.overlap import overlap_scores
from aitale.evaluation.perplexity import Score
from aitale.evaluation.plots import write_plots
from aitale.evaluation.samples_page import write_samples
from aitale.generation.writer import Writer
from aitale.io import read_jsonl, write_json
from aitale.modeling.model import load_trained
from aitale.modeling.wandb_run import start_run
from aitale.params import EvaluateParams, GenerateParams, load_section
from aitale.safety import load_screen
from aitale.safety.labelled import load_passages

log = logging.getLogger("evaluate")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    cli.setup_logging()
    try:
        params = load_section(EvaluateParams, "evaluate", args.config, cli.overrides(args))
        seed = load_section(GenerateParams, "generate", args.config).seed  # the settings are the model's own
        screen = load_screen(args.screen)
        unsafe = [p.text for p in load_passages(args.labelled) if p.split == "test" and p.unsafe_for("3-5")]
    except (ParamsError, SourceError) as err:
        log.error("%s", err)
        return 2
    output = Path(args.output_dir)

    laps = _Laps()
    tokenizer = AutoTokenizer.from_pretrained(args.model_path)
    model = load_trained(args.model_path)
    writer = Writer.load(args.model_path)
    shipped = {**asdict(writer.defaults), "seed": seed}  # the model's generation_config.json
    wandb_run = start_run("evaluate", {"evaluate": params.model_dump(), "generate": shipped})
    records = read_jsonl(args.test_dataset)
    if not records:
        log.error("%s: no test stories", args.test_dataset)
        return 2
    scored = records[: params.max_stories or None]

    laps.start()
    by_collection = suite.perplexity_by_collection(model, tokenizer, records, params.stride)
    held_out = read_jsonl(args.holdout) if args.holdout else []
    holdout = suite.perplexity_by_collection(model, tokenizer, held_out, params.stride)
    laps.end("perplexity")
    continuations = suite.continue_stories(writer, scored, params.prompt_fraction, seed)
    overlap = overlap_scores([c["story"] for c in continuations], [c["reference"] for c in continuations])
    laps.end("continuations")
    story_metrics = registry.story_metrics(screen)
    samples = suite.sample_stories(writer, params, seed, story_metrics)
    write_samples(output, args.model_path, samples)
    laps.end("samples")
    control = suite.control_accuracy(writer, params, seed, args.classifiers, screen) if args.classifiers else None
    laps.end("control")

    generated = [s["story"] for s in samples]
    references = [r["text"] for r in scored]
    continued = [c["story"] for c in continuations]
    metrics = {
        **suite.perplexity_metrics(by_collection, holdout, len(held_out)),
        **overlap,
        **suite.story_measures(generated, continued, references, story_metrics, screen, unsafe, seed),
        **({"control": control} if control else {}),
        "stories": {"test": len(records), "scored": len(scored), "samples": len(samples)},
    }
    write_plots(
        Path(args.plots_dir or output / "plots"), continuations, story_metrics, by_collection, generated, references
    )
    laps.end("narrative_metrics")
    write_json(Path(args.metrics or output / "eval.json"), metrics)
    speed = {"eval_seconds": laps.total(), "seconds": laps.seconds}
    write_json(Path(args.speed or output / "speed.json"), speed)
    _finish(wandb_run, samples, metrics, speed, by_collection)
    return 0


def _parser():
    parser = cli.stage_parser(__doc__, EvaluateParams, "evaluate")
    parser.add_argument("--model-path", required=True, help="a save_pretrained model folder (with tokenizer)")
    parser.add_argument("--test-dataset", required=True, help="test split (jsonl) from the prepare stage")
    parser.add_argument(
        "--holdout", help="the prepare stage's holdout.jsonl: bits per byte on stories training never saw"
    )
    parser.add_argument("--output-dir", required=True, help="folder for samples.md and samples.html")
    parser.add_argument("--metrics", help="metrics JSON (default: OUTPUT_DIR/eval.json)")
    parser.add_argument("--plots-dir", help="folder for the plot data (default: OUTPUT_DIR/plots)")
    parser.add_argument("--speed", help="JSON for this run's timings (default: OUTPUT_DIR/speed.json)")
    parser.add_argument("--screen", required=True, help="the content screen's folder (the safety stage's output)")
    parser.add_argument(
        "--labelled", required=True, help="the safety labels (jsonl): their test part corrupts the age metric's check"
    )
    parser.add_argument(
        "--classifiers", help="the classify stage's folder: judges the control accuracy (skipped without it)"
    )
    return parser


class _Laps:
    """The seconds each part of the run took (``--speed``, apart from the metrics, which never vary)."""

    def __init__(self) -> None:
        self.began = time.perf_counter()
        self.lap = self.began
        self.seconds: dict[str, float] = {}

    def start(self) -> None:
        self.lap = time.perf_counter()

    def end(self, part: str) -> None:
        self.seconds[part], self.lap = round(time.perf_counter() - self.lap, 1), time.perf_counter()

    def total(self) -> float:
        return round(time.perf_counter() - self.began, 1)


def _finish(wandb_run, samples: list[dict], metrics: dict, speed: dict, by_collection: dict[str, Score]) -> None:
    """The samples, metrics and timings to W&B (when it is on), and the headline figures to the log."""
    wandb_run.table("samples", [{"title": s["title"], "story": s["story"], **s["metrics"]} for s in samples])
    wandb_run.finish(summary={**metrics, "speed": speed})
    if holdout := metrics["holdout"]:
        log.info("hold-out (%d stories): %.3f bits/byte", holdout["stories"], holdout["bits_per_byte"])
    overall = sum(by_collection.values(), Score())
    log.info(
        "perplexity %.2f, %.3f bits/byte, BLEU %.2f, ROUGE-L %.2f (%.0f s)",
        overall.perplexity,
        overall.bits_per_byte,
        metrics["bleu"],
        metrics["rougeL"],
        speed["eval_seconds"],
    )


if __name__ == "__main__":
    sys.exit(main())
