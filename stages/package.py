"""Package stage: publish trained weights as self-contained model folders.

Copies the broad model to ``--output-dir`` and every specialised model to
``--specialised-dir/<name>``, each with the ``generate`` params as its
``generation_config.json`` and a model card. Kept apart from training so that changing
only a generation setting reruns this and the evaluation, never the training.

    python -m stages.package --weights models/weights --metrics metrics \\
        --output-dir models/storyteller --specialised-dir models/specialised
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path

from transformers import AutoTokenizer

from aitale import cli
from aitale.errors import ParamsError
from aitale.export.model_card import data_summary, model_card
from aitale.generation.config import generation_config
from aitale.io import atomic_dir
from aitale.params import BROAD, GenerateParams, ModelParams, SpecialiseParams, TrainParams, load_section

log = logging.getLogger("package")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    cli.setup_logging()
    try:
        generate = load_section(GenerateParams, "generate", args.config, cli.overrides(args))
        model = load_section(ModelParams, "model", args.config)
        train = load_section(TrainParams, "train", args.config)
        specialise = load_section(SpecialiseParams, "specialise", args.config)
    except ParamsError as err:
        log.error("%s", err)
        return 2

    weights, metrics = Path(args.weights), Path(args.metrics)
    slices = specialise.chain
    if stale := _stale(weights, metrics, slices):
        log.error(
            "%s: left by specialised models that params.yaml no longer names (specialise.chain); delete them",
            ", ".join(stale),
        )
        return 2
    data_metrics = json.loads((metrics / "data.json").read_text())
    hp = train.hp
    base_params = {"model": model.model_dump(), "train": hp.model_dump(), "generate": generate.model_dump()}
    publish(
        weights / BROAD,
        Path(args.output_dir),
        args.output_dir,
        generate,
        base_params,
        json.loads((metrics / "train.json").read_text()),
        data_metrics,
        None,
    )
    with atomic_dir(args.specialised_dir) as staging:
        for name, stage in sorted(slices.items()):
            slice_ = stage.slice
            params = {
                **base_params,
                "specialise": {
                    "learning_rate": specialise.learning_rate,
                    "epochs": specialise.epochs,
                    "parent": stage.parent,
                    "slice": slice_,
                },
            }
            publish(
                weights / name,
                staging / name,
                f"{args.specialised_dir}/{name}",
                generate,
                params,
                json.loads((metrics / "specialise" / f"{name}.json").read_text()),
                data_metrics,
                slice_,
            )
    log.info("published %s and %d specialised models", args.output_dir, len(slices))
    return 0


def _parser():
    parser = cli.stage_parser(__doc__, GenerateParams, "generate")
    parser.add_argument("--weights", required=True, help="folder of trained models: storyteller/ and one per slice")
    parser.add_argument("--metrics", required=True, help="folder of the training metrics (train.json, specialise/)")
    parser.add_argument("--output-dir", required=True, help="where the broad model is published")
    parser.add_argument("--specialised-dir", required=True, help="where the specialised models are published")
    return parser


def _stale(weights: Path, metrics: Path, slices) -> list[str]:
    """Models and metrics of specialised models that ``slices`` no longer names."""
    # The whole folders are this stage's DVC dependencies: what a removed group left in them would
    # count as an input, and every clone (which lacks it) would see the stage as changed.
    return sorted(
        [str(p) for p in weights.iterdir() if p.is_dir() and p.name not in {BROAD, *slices}]
        + [str(p) for p in (metrics / "specialise").glob("*.json") if p.stem not in slices]
    )


def publish(
    source: Path,
    target: Path,
    published_as: str,
    generate: GenerateParams,
    params: dict,
    train_metrics: dict,
    data_metrics: dict,
    slice_: dict | None,
) -> None:
    with atomic_dir(target) as staging:
        shutil.copytree(source, staging, dirs_exist_ok=True)
        config = json.loads((source / "config.json").read_text(encoding="utf-8"))
        start = config.get("decoder_start_token_id") if config.get("is_encoder_decoder") else None
        generation_config(generate, AutoTokenizer.from_pretrained(source), start).save_pretrained(staging)
        base = params["model"]["base"]
        parent = f", fine-tuned from `{params['specialise']['parent']}`" if slice_ else ""
        summary = (
            "A story-generation model for children's fairy tales, fables and bedtime stories, produced by "
            f"the AI Tale DVC pipeline (`dvc repro`){parent}."
        )
        card = model_card(
            Path(published_as).name,
            published_as,
            summary,
            train_metrics,
            tags=[f"{k}:{v}" for k, v in (slice_ or {}).items()],
            base_model=None if base == "scratch" else base,
            data=data_summary(data_metrics, slice_),
            params=params,
        )
        (staging / "README.md").write_text(card, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
