"""Evaluate stage: how well the published model tells the test split's stories.

Perplexity and bits per byte (sliding window, overall and per collection); BLEU and ROUGE
of continuations; the narrative metrics on the model's stories and on the real ones, with
the rates at which each metric tells a real story from a corrupted copy; sample stories
in Markdown and HTML; and the data behind the plots declared in ``dvc.yaml``. The time each
part took goes to ``--speed``, apart from the metrics, which are the same on every run.

    python -m stages.evaluate --model-path models/storyteller \\
        --test-dataset data/processed/test.jsonl --output-dir evaluation_results
"""

from __future__ import annotations

import csv
import logging
import sys
import time
from collections import defaultdict
from io import StringIO
from pathlib import Path
from statistics import fmean

import torch
from tqdm import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer

from aitale import cli
from aitale.data.content_filter import ContentFilter
from aitale.data.structure import prompt
from aitale.errors import ParamsError
from aitale.evaluation import narrative
from aitale.evaluation.corruptions import default_checks, validate
from aitale.evaluation.overlap import overlap_scores, split_story
from aitale.evaluation.perplexity import Score, score_texts, torch_logits
from aitale.evaluation.report import write_samples
from aitale.generation import continue_text
from aitale.io import read_jsonl, write_json, write_text
from aitale.modeling.model import model_context
from aitale.params import EvaluateParams, GenerateParams, PrepareParams, load_section

log = logging.getLogger("evaluate")


def main(argv: list[str] | None = None) -> int:
    parser = cli.stage_parser(__doc__, EvaluateParams, "evaluate")
    parser.add_argument("--model-path", required=True, help="a save_pretrained model folder (with tokenizer)")
    parser.add_argument("--test-dataset", required=True, help="test split (jsonl) from the prepare stage")
    parser.add_argument("--output-dir", required=True, help="folder for samples.md and samples.html")
    parser.add_argument("--metrics", help="metrics JSON (default: OUTPUT_DIR/eval.json)")
    parser.add_argument("--plots-dir", help="folder for the plot data (default: OUTPUT_DIR/plots)")
    parser.add_argument("--speed", help="JSON for this run's timings (default: OUTPUT_DIR/speed.json)")
    args = parser.parse_args(argv)
    cli.setup_logging()
    try:
        params = load_section(EvaluateParams, "evaluate", args.config, cli.overrides(args))
        generate = load_section(GenerateParams, "generate", args.config)
        rules = ContentFilter(load_section(PrepareParams, "prepare", args.config).filter)
    except ParamsError as err:
        log.error("%s", err)
        return 2
    output = Path(args.output_dir)
    metrics_path = Path(args.metrics or output / "eval.json")
    plots = Path(args.plots_dir or output / "plots")
    speed_path = Path(args.speed or output / "speed.json")

    started = time.perf_counter()
    torch.manual_seed(generate.seed)
    tokenizer = AutoTokenizer.from_pretrained(args.model_path)
    model = AutoModelForCausalLM.from_pretrained(args.model_path).eval()
    records = read_jsonl(args.test_dataset)
    if not records:
        log.error("%s: no test stories", args.test_dataset)
        return 2
    scored = records[: params.max_stories or None]

    seconds = {}
    lap = time.perf_counter()

    def timed(part: str) -> None:
        nonlocal lap
        seconds[part], lap = round(time.perf_counter() - lap, 1), time.perf_counter()

    by_collection = perplexity_by_collection(model, tokenizer, records, params.stride)
    overall = sum(by_collection.values(), Score())
    timed("perplexity")
    continuations = continue_stories(model, tokenizer, scored, params.prompt_fraction, generate)
    overlap = overlap_scores([c["story"] for c in continuations], [c["reference"] for c in continuations])
    timed("continuations")
    samples = write_sample_stories(model, tokenizer, params, generate, rules, output, args.model_path)
    timed("samples")

    story_metrics = metric_functions(rules)
    generated = [s["story"] for s in samples]
    references = [r["text"] for r in scored]
    metrics = {
        "perplexity": round(overall.perplexity, 3),
        "bits_per_byte": round(overall.bits_per_byte, 4),
        "tokens": overall.tokens,
        "by_collection": {name: {"perplexity": round(s.perplexity, 3), "bits_per_byte": round(s.bits_per_byte, 4)}
                          for name, s in sorted(by_collection.items())},
        **overlap,
        "narrative": {
            "samples": mean_metrics(generated, story_metrics),
            "continuations": mean_metrics([c["story"] for c in continuations], story_metrics),
            "references": mean_metrics(references, story_metrics),
        },
        "diversity": {"self_bleu": round(narrative.self_bleu(generated), 3),
                      "distinct_2": round(fmean(narrative.distinct_n(s, 2) for s in generated), 4)},
        "validation": validate(references, rules=rules, seed=generate.seed),
        "stories": {"test": len(records), "scored": len(scored), "samples": len(samples)},
    }
    write_plots(plots, continuations, story_metrics, by_collection, generated, references)
    timed("narrative_metrics")
    write_json(metrics_path, metrics)
    speed = {"eval_seconds": round(time.perf_counter() - started, 1), "seconds": seconds}
    write_json(speed_path, speed)
    log.info("perplexity %.2f, %.3f bits/byte, BLEU %.2f, ROUGE-L %.2f (%.0f s)", overall.perplexity,
             overall.bits_per_byte, overlap["bleu"], overlap["rougeL"], speed["eval_seconds"])
    return 0


def perplexity_by_collection(model, tokenizer, records: list[dict], stride: int) -> dict[str, Score]:
    groups: dict[str, list[str]] = defaultdict(list)
    for record in records:
        groups[record["collection"]].append(record["structured"])
    logits = torch_logits(model)
    encode = lambda text: tokenizer(text).input_ids  # noqa: E731
    return {name: score_texts(tqdm(texts, desc=f"perplexity {name}", leave=False), encode, logits,
                              model_context(model), stride)
            for name, texts in groups.items()}


def continue_stories(model, tokenizer, records, prompt_fraction, generate) -> list[dict]:
    continuations = []
    for i, record in enumerate(tqdm(records, desc="continuations")):
        pair = split_story(record["text"], prompt_fraction)
        story = continue_text(model, tokenizer, prompt(record["title"]) + pair.prompt, generate, generate.seed + i)
        continuations.append({"collection": record["collection"], "story": story, "reference": pair.reference})
    return continuations


def write_sample_stories(model, tokenizer, params, generate, rules, output: Path, model_path: str) -> list[dict]:
    story_metrics = metric_functions(rules)
    samples = []
    for i, title in enumerate(tqdm([t for t in params.sample_prompts for _ in range(params.samples_per_prompt)],
                                   desc="samples")):
        story = continue_text(model, tokenizer, prompt(title), generate, generate.seed + 10_000 + i)
        samples.append({"title": title, "story": story,
                        "metrics": {name: fn(story) for name, fn in story_metrics.items()}})
    write_samples(output, model_path, samples)
    return samples


def metric_functions(rules: ContentFilter) -> dict:
    """The narrative metrics by name (each validated against its corruption by ``validate``)."""
    return {name: metric for name, (metric, _) in default_checks(rules).items()}


def mean_metrics(texts: list[str], story_metrics: dict) -> dict[str, float]:
    return {name: round(fmean(fn(t) for t in texts), 4) for name, fn in story_metrics.items()}


def write_plots(folder: Path, continuations, story_metrics, by_collection, generated, references) -> None:
    """Small CSV files behind the evaluation plots of ``dvc.yaml`` (git-tracked, diffable)."""
    rows = [("collection", "bits_per_byte")] + [(n, round(s.bits_per_byte, 4)) for n, s in sorted(by_collection.items())]
    write_csv(folder / "bpb_by_collection.csv", rows)
    grouped: dict[str, list[str]] = defaultdict(list)
    for c in continuations:
        grouped[c["collection"]].append(c["story"])
    rows = [("collection_metric", "value")]
    for collection, texts in sorted(grouped.items()):
        rows += [(f"{collection} / {name}", value) for name, value in mean_metrics(texts, story_metrics).items()]
    write_csv(folder / "metrics_by_collection.csv", rows)
    for name, texts in (("samples", generated), ("references", references)):
        arcs = [narrative.sentiment_arc(t) for t in texts]
        mean_arc = [round(fmean(points), 4) for points in zip(*arcs)]
        write_csv(folder / f"arc_{name}.csv", [("segment", "sentiment")] + list(enumerate(mean_arc, start=1)))


def write_csv(path: Path, rows: list[tuple]) -> None:
    buffer = StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    write_text(path, buffer.getvalue())


if __name__ == "__main__":
    sys.exit(main())
