"""What each augmentation method does to the default model: its share of the train split, and val loss.

For the default ``params.yaml`` (the custom stories of ``data/stories``, the scratch model), the
prepare stage runs once with no augmentation and once with each method alone (``prepare.augment.
methods: [method]``, the params' probability and seed). Every variant has the same split (the split
comes before augmentation, so val is the same file), and every model is trained by the train stage
with the same seed and the same tokenizer: the one learned from the unaugmented train split, so that
val losses (nats per token) are comparable. The train stage's epochs are fixed, so more stories also
mean more steps, as they would in the pipeline.

Reported per method: the share of the train split's stories it changes (applied to every story),
the augmented records prepare added at the params' probability and those the content screen
dropped, and the val loss with the method alone against none. Training runs under ``nice -n 10``.
With ``--books``, where the ten reference books are on this machine (``../shared/corpus/gutenberg``),
each method's changed share of their tales of tale length is reported too (``changed_share_books``,
before the screen; no training on them).

A variant's training result is kept in ``--workdir`` under a hash of its inputs (train and val
files, tokenizer, the ``model`` and ``train`` params) and reused while they are unchanged: an
interrupted run resumes, and a method that changes no story (its train split is none's) trains once.

    .venv/bin/python -m benchmarks.augment_effect                  # none + all four methods
    .venv/bin/python -m benchmarks.augment_effect --methods none   # one variant
    .venv/bin/python -m benchmarks.augment_effect --books          # and the shares of the ten books
    .venv/bin/python -m benchmarks.augment_effect --methods copies # the control: unchanged copies

Results: benchmarks/results/augment_effect.json, and a table on stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import subprocess
import sys
import time
from pathlib import Path

from aitale.data.augment import METHODS, changed_share
from aitale.data.gutenberg import parse_book
from aitale.data.readability import age_group_for
from aitale.data.records import Story
from aitale.data.text import word_count
from aitale.io import write_json
from aitale.params import PrepareParams, load_section, read_params
from aitale.safety import load_screen
from benchmarks.common import safety_args

REPO = Path(__file__).resolve().parents[1]
# "copies": a control, no method: the same share of train stories added again unchanged, so the
# extra optimizer steps an augmentation brings can be told apart from what its text brings
# (one more training run: asked for with --methods, not run by default).
VARIANTS = ("none", *METHODS, "copies")
CORPUS = REPO.parent / "shared" / "corpus" / "gutenberg"  # the ten reference books, when this machine has them


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--methods",
        default=",".join(["none", *METHODS]),
        help="comma-separated variants: none (no augmentation), a method, or copies (the control; not by default)",
    )
    parser.add_argument("--workdir", default="/tmp/aitale-augment-effect", help="prepared data, models, cache")
    parser.add_argument("--books", action="store_true", help="also each method's share of the ten books' tales")
    parser.add_argument("--output", default=str(REPO / "benchmarks/results/augment_effect.json"))
    args = parser.parse_args()
    variants = [v for v in args.methods.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; choose from {VARIANTS}")
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    params = load_section(PrepareParams, "prepare", REPO / "params.yaml")

    screen_dir = REPO / "models/safety"
    if not screen_dir.is_dir():
        screen_dir = work / "safety"
        if not screen_dir.is_dir():
            _run("safety", *safety_args(screen_dir, work / "safety.json", work / "safety_plots"))

    (work / "no-books").mkdir(exist_ok=True)
    (work / "no-books" / "manifest.json").write_text('{"books": []}')
    for variant in dict.fromkeys(["none", *variants]):
        if variant == "copies":
            _copies(work, params)
            continue
        methods = "[]" if variant == "none" else f"[{variant}]"
        _run(
            "prepare",
            "--stories",
            "data/stories",
            "--books",
            work / "no-books",
            "--screen",
            screen_dir,
            "--output-dir",
            work / variant / "processed",
            "--metrics",
            work / variant / "data.json",
            "--augment.methods",
            methods,
        )
    base = work / "none" / "processed"
    tokenizer = work / "tokenizer"
    if not tokenizer.exists():
        _run("tokenizer", "--train", base / "train.jsonl", "--output-dir", tokenizer)

    train_stories = [json.loads(line) for line in (base / "train.jsonl").read_text().splitlines()]
    screen = load_screen(screen_dir)
    results: dict[str, dict] = {}
    previous = json.loads(Path(args.output).read_text()) if Path(args.output).exists() else {}
    for variant in dict.fromkeys(["none", *variants]):
        row = _train(work, variant, tokenizer)
        data = json.loads((work / variant / "data.json").read_text())
        row["train_stories"] = data["stories"]["train"]
        row["augmented_added"] = data["augmented"]
        row["augmented_unsafe_dropped"] = data.get("augmentation", {}).get(variant, {}).get("unsafe", 0)
        if variant in METHODS:
            share = changed_share(train_stories, variant, params.seed, screen)
            row["changed_share"] = round(share, 3)
        results[variant] = row
    merged = {**previous.get("variants", {}), **results}
    books = _book_shares(params) if args.books and CORPUS.is_dir() else {}
    for variant, share in books.items():
        if variant in merged:
            merged[variant]["changed_share_books"] = round(share, 3)
    none = merged["none"]["val_loss"]
    for row in merged.values():
        row["val_loss_delta"] = round(row["val_loss"] - none, 4)
    report = {
        "params": {"probability": params.augment.probability, "seed": params.seed},
        "tokenizer": "learned from the unaugmented train split, shared by every variant",
        "variants": merged,
    }
    write_json(args.output, report)
    print(f"{'variant':<11} {'changed':>8} {'added':>6} {'unsafe':>6} {'steps':>6} {'val loss':>9} {'delta':>8}")
    for name, row in merged.items():
        changed = f"{row['changed_share']:.0%}" if "changed_share" in row else "-"
        print(
            f"{name:<11} {changed:>8} {row['augmented_added']:>6} {row['augmented_unsafe_dropped']:>6} "
            f"{row['steps']:>6} {row['val_loss']:>9.4f} {row['val_loss_delta']:>+8.4f}"
        )


def _copies(work: Path, params: PrepareParams) -> None:
    """The control's train split: none's, plus an unchanged copy of each story drawn with the probability."""
    lines = (work / "none" / "processed" / "train.jsonl").read_text().splitlines()
    extra = []
    for line in lines:
        record = json.loads(line)
        if random.Random(f"{params.seed}/{record['id']}/copies").random() < params.augment.probability:
            extra.append(json.dumps({**record, "id": record["id"] + "~copy", "augmented": True}))
    out = work / "copies" / "processed"
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.jsonl").write_text("\n".join(lines + extra) + "\n")
    data = {"stories": {"train": len(lines) + len(extra)}, "augmented": len(extra)}
    (work / "copies" / "data.json").write_text(json.dumps(data))


def _book_shares(params: PrepareParams) -> dict[str, float]:
    """Each method's changed share of the ten reference books' tales of tale length (no training).

    Before the content screen: judging some 600 long tales four times takes hours on 2 cores.
    """
    tales = []
    for line in (CORPUS / "MANIFEST.tsv").read_text().splitlines()[1:]:
        book = int(line.split("\t")[0])
        for tale in parse_book((CORPUS / f"pg{book}.txt").read_bytes(), book):
            if params.min_words <= word_count(tale.text) <= params.max_words:
                style = "fable" if "fable" in tale.title.lower() else "fairy_tale"
                tales.append(
                    Story(
                        id=f"pg{book}/{tale.title}",
                        title=tale.title,
                        text=tale.text,
                        source="gutenberg",
                        collection=str(book),
                        age_group=age_group_for(tale.text),
                        themes=[],
                        style=style,
                    )
                )
    print(f"books: {len(tales)} tales of tale length", flush=True)
    return {method: changed_share(tales, method, params.seed) for method in METHODS}


def _train(work: Path, variant: str, tokenizer: Path) -> dict:
    processed = work / variant / "processed"
    val = work / "none" / "processed" / "val.jsonl"
    key = _digest([processed / "train.jsonl", val, *sorted(tokenizer.glob("*"))])
    cached = work / "cache" / f"{key}.json"  # by content: a variant whose train split is none's trains once
    if cached.exists():
        return json.loads(cached.read_text())
    out = work / variant / "run"
    subprocess.run(["rm", "-rf", str(out)], check=True)
    started = time.monotonic()
    _run(
        "train",
        "--tokenizer",
        tokenizer,
        "--train",
        processed / "train.jsonl",
        "--val",
        val,
        "--output-dir",
        out / "weights",
        "--checkpoints",
        out / "checkpoints",
        "--live",
        out / "live",
        "--speed",
        out / "speed",
        "--metrics",
        out / "train.json",
        nice=True,
    )
    metrics = json.loads((out / "train.json").read_text())
    result = {
        "val_loss": metrics["val_loss"],
        "steps": metrics["steps"],
        "train_tokens": metrics["train_tokens"],
        "seconds": round(time.monotonic() - started),
    }
    cached.parent.mkdir(exist_ok=True)
    cached.write_text(json.dumps(result))
    return result


def _digest(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    digest.update(json.dumps({k: read_params(REPO / "params.yaml")[k] for k in ("model", "train")}).encode())
    return digest.hexdigest()


def _run(stage: str, *args: object, nice: bool = False) -> None:
    command = [sys.executable, "-m", f"stages.{stage}", *map(str, args)]
    if nice:
        command = ["nice", "-n", "10", *command]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, cwd=REPO, check=True)


if __name__ == "__main__":
    main()
