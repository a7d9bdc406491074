"""Tell: a story for a child, from the command line.

    python -m stages.tell --title "The Brave Little Kettle" --age-group 3-5 --theme courage --style bedtime --seed 7
    python -m stages.tell --title "The Moon Hare" --age-group 6-8      # any style, any theme
    make story TITLE="The Brave Little Kettle" AGE=3-5 THEME=courage STYLE=bedtime

The story is written by the packaged storyteller (``--model``; an export folder with ``--variant
onnx`` or ``onnx-int8`` runs on onnxruntime), from a prompt carrying the age group, themes and
style, with the model's generation settings. Style and themes may be left out: the prompt then has
no token for them and the story is written unconditioned on them (``unconditioned`` in the JSON).
It ends at the model's end-of-text or at its last full sentence. The title, then the title with
the story, pass the content screen for the age group before anything is printed; a story that
fails is written again with the next seed (``--redraws`` times at most), then refused with the
reasons (exit 3). The same seed writes the same story. ``--format json`` prints the fields the
server's ``/v1/stories`` returns.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from pydantic import ValidationError

from aitale import cli
from aitale.generation.story import MAX_REDRAWS, REDRAWS, Refused, StoryRequest

log = logging.getLogger("tell")

DEFAULT_MODEL, DEFAULT_EXPORT, DEFAULT_SCREEN = "models/storyteller", "models/onnx", "models/safety"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    cli.setup_logging()
    try:  # refused before any model is loaded
        request = StoryRequest(
            title=args.title,
            age_group=args.age_group,
            themes=args.themes,
            style=args.style,
            seed=args.seed,
            max_tokens=args.max_tokens,
        )
    except ValidationError as err:
        for error in err.errors():  # "Input should be '3-5', '6-8' or '9-12'": the message names what is accepted
            flag = "--" + str(error["loc"][0]).replace("_", "-").replace("themes", "theme")
            log.error("%s %r: %s", flag, error["input"], error["msg"])
        return 2
    if not 0 <= args.redraws <= MAX_REDRAWS:
        log.error(
            "--redraws %d: give 0 to %d (at most %d new draws, as the server allows)",
            args.redraws,
            MAX_REDRAWS,
            MAX_REDRAWS,
        )
        return 2
    return run(args, request)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    fields = StoryRequest.model_fields
    parser.add_argument("--title", required=True, help=fields["title"].description)
    parser.add_argument(
        "--age-group",
        required=True,
        help=f"{fields['age_group'].description}: "
        f"{', '.join(a for a in StoryRequest.model_json_schema()['properties']['age_group']['enum'])}",
    )
    parser.add_argument(
        "--theme", action="append", default=[], dest="themes", help=f"{fields['themes'].description}; repeat for more"
    )
    parser.add_argument("--style", help=fields["style"].description)
    parser.add_argument(
        "--seed", type=int, help="the same seed writes the same story (default: generate.seed of params.yaml, else 0)"
    )
    parser.add_argument("--max-tokens", type=int, help=fields["max_tokens"].description)
    parser.add_argument(
        "--model",
        help=f"a packaged model folder (default: {DEFAULT_MODEL}) or, with an onnx "
        f"variant, an export folder (default: {DEFAULT_EXPORT})",
    )
    parser.add_argument(
        "--variant",
        default="pytorch",
        choices=["pytorch", "onnx", "onnx-int8"],
        help="what runs the model (default: %(default)s)",
    )
    parser.add_argument("--screen", default=DEFAULT_SCREEN, help="the content screen's folder (default: %(default)s)")
    parser.add_argument(
        "--redraws",
        type=int,
        default=REDRAWS,
        help=f"new draws after a story fails the screen, 0 to {MAX_REDRAWS} (default: %(default)s)",
    )
    parser.add_argument("--format", default="text", choices=["text", "markdown", "json"], help="output format")
    parser.add_argument("--config", default=cli.DEFAULT_CONFIG, help="params file for the default seed")
    return parser


def run(args, request: StoryRequest) -> int:
    from aitale.generation.decoders import ModelFileError
    from aitale.generation.teller import Teller

    seed = request.seed if request.seed is not None else default_seed(args.config)
    model = args.model or (DEFAULT_MODEL if args.variant == "pytorch" else DEFAULT_EXPORT)
    try:
        teller = Teller.load(model, args.variant, args.screen)
        story = teller.tell(request, seed, redraws=args.redraws)
    except Refused as refused:
        log.error("%s", refused)
        for verdict in refused.verdicts:
            for reason in verdict.get("reasons", [])[:3]:
                log.error("  %s (%s): %s", reason.get("category"), reason.get("source"), reason.get("detail"))
        return 3
    except (OSError, ValueError, ModelFileError) as err:
        log.error("%s", err)
        return 2
    print(render(story.to_json(), args.format))
    return 0


def default_seed(config: str) -> int:
    from aitale.errors import ParamsError
    from aitale.params import GenerateParams, load_section

    try:
        return load_section(GenerateParams, "generate", config).seed
    except ParamsError:
        return 0


def render(story: dict, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(story, indent=2, ensure_ascii=False)
    if fmt == "markdown":
        themes = ", ".join(story["themes"]) or "any theme"
        kind = (story["style"] or "story").replace("_", " ")
        return (
            f"# {story['title']}\n\n*A {kind} for ages {story['age_group']} "
            f"({themes}); seed {story['seed']}.*\n\n{story['text']}\n"
        )
    return f"{story['title']}\n\n{story['text']}\n"


if __name__ == "__main__":
    sys.exit(main())
