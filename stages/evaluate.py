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

import csv
import logging
import sys
import time
from collections import defaultdict
from dataclasses import asdict
from io import StringIO
from pathlib import Path
from statistics import fmean

from tqdm import tqdm
from transformers import AutoTokenizer

from aitale import cli
from aitale.data.structure import prompt, request_and_story
from aitale.errors import ParamsError, SourceError
from aitale.evaluation import metrics as registry
from aitale.evaluation.corruptions import validate
from aitale.evaluation.narrative.arc import sentiment_arc
from aitale.evaluation.narrative.creativity import distinct_n
from aitale.evaluation.narrative.diversity import self_bleu
from aitale.evaluation.overlap import overlap_scores, split_story
from aitale.evaluation.perplexity import Score, score_stories, score_texts, torch_logits
from aitale.evaluation.samples_page import write_samples
from aitale.generation.writer import Writer
from aitale.io import read_jsonl, write_json, write_text
from aitale.labels import AGE_GROUPS
from aitale.modeling.model import load_trained, model_context
from aitale.modeling.wandb_run import start_run
from aitale.params import EvaluateParams, GenerateParams, load_section
from aitale.safety import Screen, load_screen
from aitale.safety.labelled import load_passages

log = logging.getLogger("evaluate")


def main(argv: list[str] | None = None) -> int:
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
    args = parser.parse_args(argv)
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
    metrics_path = Path(args.metrics or output / "eval.json")
    plots = Path(args.plots_dir or output / "plots")
    speed_path = Path(args.speed or output / "speed.json")

    started = time.perf_counter()
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

    seconds = {}
    lap = time.perf_counter()

    def timed(part: str) -> None:
        nonlocal lap
        seconds[part], lap = round(time.perf_counter() - lap, 1), time.perf_counter()

    by_collection = perplexity_by_collection(model, tokenizer, records, params.stride)
    overall = sum(by_collection.values(), Score())
    held_out = read_jsonl(args.holdout) if args.holdout else []
    holdout = perplexity_by_collection(model, tokenizer, held_out, params.stride)
    timed("perplexity")
    continuations = continue_stories(writer, scored, params.prompt_fraction, seed)
    overlap = overlap_scores([c["story"] for c in continuations], [c["reference"] for c in continuations])
    timed("continuations")
    samples = write_sample_stories(writer, params, seed, screen, output, args.model_path)
    timed("samples")
    control = control_accuracy(writer, params, seed, args.classifiers, screen) if args.classifiers else None
    timed("control")

    story_metrics = metric_functions(screen)
    generated = [s["story"] for s in samples]
    references = [r["text"] for r in scored]
    metrics = {
        "perplexity": round(overall.perplexity, 3),
        "bits_per_byte": round(overall.bits_per_byte, 4),
        "tokens": overall.tokens,
        "by_collection": rounded(by_collection),
        # out of collection: the hold-out's stories (held-out books, held-out custom tales) are in no split
        "holdout": {**rounded_score(sum(holdout.values(), Score())), "stories": len(held_out)} if held_out else None,
        "holdout_by_collection": rounded(holdout),
        **overlap,
        "narrative": {
            "samples": mean_metrics(generated, story_metrics),
            "continuations": mean_metrics([c["story"] for c in continuations], story_metrics),
            "references": mean_metrics(references, story_metrics),
        },
        "diversity": {
            "self_bleu": round(self_bleu(generated), 3),
            "distinct_2": round(fmean(distinct_n(s, 2) for s in generated), 4),
        },
        "screen_pass_rate": pass_rates(screen, generated),
        "validation": validate(references, screen=screen, unsafe=unsafe, seed=seed),
        **({"control": control} if control else {}),
        "stories": {"test": len(records), "scored": len(scored), "samples": len(samples)},
    }
    write_plots(plots, continuations, story_metrics, by_collection, generated, references)
    timed("narrative_metrics")
    write_json(metrics_path, metrics)
    speed = {"eval_seconds": round(time.perf_counter() - started, 1), "seconds": seconds}
    write_json(speed_path, speed)
    wandb_run.table("samples", [{"title": s["title"], "story": s["story"], **s["metrics"]} for s in samples])
    wandb_run.finish(summary={**metrics, "speed": speed})
    if held_out:
        log.info("hold-out (%d stories): %.3f bits/byte", len(held_out), metrics["holdout"]["bits_per_byte"])
    log.info(
        "perplexity %.2f, %.3f bits/byte, BLEU %.2f, ROUGE-L %.2f (%.0f s)",
        overall.perplexity,
        overall.bits_per_byte,
        overlap["bleu"],
        overlap["rougeL"],
        speed["eval_seconds"],
    )
    return 0


def perplexity_by_collection(model, tokenizer, records: list[dict], stride: int) -> dict[str, Score]:
    if model.config.is_encoder_decoder:  # T5: the story given its request
        collections: dict[str, list[dict]] = defaultdict(list)
        for record in records:
            collections[record["collection"]].append(record)
        return {name: score_stories(model, tokenizer, group) for name, group in collections.items()}
    groups: dict[str, list[str]] = defaultdict(list)
    for record in records:
        groups[record["collection"]].append(record["structured"])
    logits = torch_logits(model)
    encode = lambda text: tokenizer(text).input_ids  # noqa: E731
    return {
        name: score_texts(
            tqdm(texts, desc=f"perplexity {name}", leave=False), encode, logits, model_context(model), stride
        )
        for name, texts in groups.items()
    }


def rounded_score(score: Score) -> dict:
    return {
        "perplexity": round(score.perplexity, 3),
        "bits_per_byte": round(score.bits_per_byte, 4),
        "tokens": score.tokens,
    }


def rounded(by_collection: dict[str, Score]) -> dict[str, dict]:
    return {
        name: {"perplexity": round(s.perplexity, 3), "bits_per_byte": round(s.bits_per_byte, 4)}
        for name, s in sorted(by_collection.items())
    }


def continue_stories(writer: Writer, records, prompt_fraction, seed: int) -> list[dict]:
    """Each story's opening continued by the model (seeded per story), with the real continuation."""
    if writer.decoder.layout.positional is not None:  # T5 writes a whole story from the request alone
        log.info("writing %d test stories from their requests", len(records))
        written = writer.write(
            [request_and_story(r)[0] for r in records],
            [writer.defaults.but(seed=seed + i) for i in range(len(records))],
            progress="stories",
        )
        return [
            {"collection": r["collection"], "story": w.text, "reference": r["text"]} for r, w in zip(records, written)
        ]
    pairs = [split_story(record["text"], prompt_fraction) for record in records]
    log.info("continuing %d test stories", len(records))
    written = writer.write(
        [prompt(r["title"]) + pair.prompt for r, pair in zip(records, pairs)],
        [writer.defaults.but(seed=seed + i) for i in range(len(records))],
        keep_last=writer.context // 2,
        progress="continuations",
    )  # room to go on
    return [
        {"collection": r["collection"], "story": w.text, "reference": pair.reference}
        for r, pair, w in zip(records, pairs, written)
    ]


def write_sample_stories(writer: Writer, params, seed: int, screen, output: Path, model_path: str) -> list[dict]:
    story_metrics = metric_functions(screen)
    titles = [t for t in params.sample_prompts for _ in range(params.samples_per_prompt)]
    written = writer.write(
        [prompt(t) for t in titles],
        [writer.defaults.but(seed=seed + 10_000 + i) for i in range(len(titles))],
        progress="samples",
    )
    samples = [
        {"title": title, "story": w.text, "metrics": {name: fn(w.text) for name, fn in story_metrics.items()}}
        for title, w in zip(titles, written)
    ]
    write_samples(output, model_path, samples)
    return samples


def pass_rates(screen: Screen, stories: list[str]) -> dict[str, float]:
    """Per age group, the share of ``stories`` the content screen passes."""
    return {age: round(fmean(v.safe for v in screen.judge_many(stories, age)), 4) for age in AGE_GROUPS}


def control_accuracy(writer: Writer, params, seed: int, classifiers: str, screen: Screen) -> dict:
    """The control grid written with and without control tokens, judged by the classify stage's judges."""
    from aitale.evaluation import control

    result = control.measure(
        writer,
        params.sample_prompts,
        params.control.themes,
        params.control.stories_per_condition,
        seed + 20_000,
        judges=control.load_judges(classifiers),
        screen=screen,
        resamples=params.control.bootstrap_resamples,
    )
    for d in control.DIMENSIONS:
        gain, low, high = (result[key][d] for key in ("gain_points", "gain_ci_low", "gain_ci_high"))
        log.info("control gain, %s: %+.1f points (95%% interval %+.1f to %+.1f)", d, gain, low, high)
    return result


def metric_functions(screen: Screen) -> dict:
    """Every story metric by name (``aitale.evaluation.metrics``: what the judge reports too)."""
    return registry.story_metrics(screen)


def mean_metrics(texts: list[str], story_metrics: dict) -> dict[str, float]:
    return {name: round(fmean(fn(t) for t in texts), 4) for name, fn in story_metrics.items()}


def write_plots(folder: Path, continuations, story_metrics, by_collection, generated, references) -> None:
    """Small CSV files behind the evaluation plots of ``dvc.yaml`` (git-tracked, diffable)."""
    rows = [("collection", "bits_per_byte")] + [
        (n, round(s.bits_per_byte, 4)) for n, s in sorted(by_collection.items())
    ]
    write_csv(folder / "bpb_by_collection.csv", rows)
    grouped: dict[str, list[str]] = defaultdict(list)
    for c in continuations:
        grouped[c["collection"]].append(c["story"])
    rows = [("collection_metric", "value")]
    for collection, texts in sorted(grouped.items()):
        rows += [(f"{collection} / {name}", value) for name, value in mean_metrics(texts, story_metrics).items()]
    write_csv(folder / "metrics_by_collection.csv", rows)
    for name, texts in (("samples", generated), ("references", references)):
        arcs = [sentiment_arc(t) for t in texts]
        mean_arc = [round(fmean(points), 4) for points in zip(*arcs)]
        write_csv(folder / f"arc_{name}.csv", [("segment", "sentiment")] + list(enumerate(mean_arc, start=1)))


def write_csv(path: Path, rows: list[tuple]) -> None:
    buffer = StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    write_text(path, buffer.getvalue())


if __name__ == "__main__":
    sys.exit(main())
