"""What several benchmarks share: the content screen's inputs, as dvc.yaml's safety stage reads them."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def safety_args(output_dir: Path | str, metrics: Path | str, plots_dir: Path | str) -> list[str]:
    """``python -m stages.safety``'s arguments: the repository's labels, rules, concepts and stories, and these
    outputs (a benchmark builds its own screen beside its other work)."""
    labels = REPO / "data/safety"
    return [
        "--passages", str(labels / "passages.jsonl"), "--rules", str(labels / "rules.yaml"),
        "--concepts", str(labels / "concepts.yaml"), "--stories", str(REPO / "data/stories"),
        "--output-dir", str(output_dir), "--metrics", str(metrics), "--plots-dir", str(plots_dir),
    ]  # fmt: skip
