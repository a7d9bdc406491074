"""Generation speed: transformers' ``generate`` with the KV cache against without it, on this machine.

The same model, prompts, seed and number of new tokens, decoded greedily both ways:

* ``cache``: ``use_cache=True``, each step runs the new token only, attending to the cached
  keys and values of the tokens before it (what ``aitale.generation`` does);
* ``no_cache``: ``use_cache=False``, each step runs the whole sequence so far again.

Greedy decoding (``do_sample=False``) with ``min_new_tokens = max_new_tokens``, so both
settings write exactly the same number of tokens, and the same tokens: the run checks that
they are identical and stops if they are not. Two models:

* ``default``: the published model (``--model``, default models/storyteller) and its
  tokenizer; without one, the ``model`` section of params.yaml built with random weights;
* ``gpt2-124m``: ``GPT2Config()`` (12 layers, 768 wide, 50,257 tokens, 1,024 positions)
  with random weights (seeded): the shape of the spec's pretrained base, kept to one prompt
  per context and a couple of dozen new tokens so that the slow setting stays within a
  minute or two on 2 cores.

Each model is timed at two context lengths: ``short``, a story prompt as the evaluate stage
writes it (``<|title|>Title\\n<|beginning|>`` for each of ``evaluate.sample_prompts``), and
``long``, that prompt followed by the opening of a custom story from data/stories, cut to
``--long-prompt`` tokens. The two settings alternate over ``--repeats`` rounds (the order
flipping each round, after an untimed warm-up of each), so load from other processes falls
on both alike; a setting's time for a round is the sum over the prompts, and tokens/s is the
median over rounds of new tokens / that time (prefill included, as a user waits for it).
One torch thread by default (``--threads 0``: torch's default, one per core): on a shared
2-core machine a second thread mostly waits on the other processes, and one thread keeps the
figures steady; the JSON records the count.

    .venv/bin/python -m benchmarks.generation_speed       # both models (~3-5 min on a busy 2-core machine)
    .venv/bin/python -m benchmarks.generation_speed --models default --repeats 5

Results: benchmarks/results/generation_speed.json (with the machine), and a table on stdout.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from transformers import AutoTokenizer, GenerationConfig, PreTrainedModel

from aitale.data.stories import load_stories
from aitale.data.structure import prompt as story_prompt
from aitale.io import write_json
from aitale.machine import LoadRange, describe
from aitale.modeling.model import model_context
from aitale.params import EvaluateParams, load_section
from benchmarks.export_speed import build, heading, shape

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO / "benchmarks" / "results" / "generation_speed.json"
MODELS = ("default", "gpt2-124m")
SETTINGS = {"cache": True, "no_cache": False}

log = logging.getLogger("generation_speed")


@dataclass(frozen=True)
class Case:
    name: str  # short / long
    prompts: list[list[int]]
    new_tokens: int


def prompt_ids(model_path: Path, config_path: Path, long_tokens: int, vocab_size: int) -> tuple[dict, str]:
    """Token ids of the short (title) and long (title + story opening) prompts.

    With the published model's tokenizer when there is one (its ids are valid for both
    models: 4,096 < 50,257); otherwise seeded random ids of the same lengths.
    """
    titles = load_section(EvaluateParams, "evaluate", config_path).sample_prompts
    stories = load_stories(REPO / "data" / "stories")[: len(titles)]
    if (model_path / "tokenizer.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        short = [tokenizer(story_prompt(t)).input_ids for t in titles]
        long = [tokenizer(story_prompt(s.title) + s.text).input_ids[:long_tokens] for s in stories]
        return {"short": short, "long": long}, f"{model_path} tokenizer"
    generator = torch.Generator().manual_seed(0)
    short = [torch.randint(0, vocab_size, (8,), generator=generator).tolist() for _ in titles]
    long = [torch.randint(0, vocab_size, (long_tokens,), generator=generator).tolist() for _ in titles]
    return {"short": short, "long": long}, "seeded random ids (no tokenizer found)"


@torch.no_grad()
def run(model: PreTrainedModel, case: Case, use_cache: bool, seed: int) -> tuple[float, list[list[int]]]:
    """Seconds to generate every prompt's continuation in turn, and the new tokens."""
    config = GenerationConfig(
        do_sample=False,
        max_new_tokens=case.new_tokens,
        min_new_tokens=case.new_tokens,
        use_cache=use_cache,
        eos_token_id=model.config.eos_token_id,
        pad_token_id=model.config.pad_token_id if model.config.pad_token_id is not None else model.config.eos_token_id,
    )
    outputs, seconds = [], 0.0
    for ids in case.prompts:
        tensor = torch.tensor([ids])
        torch.manual_seed(seed)
        started = time.perf_counter()
        out = model.generate(tensor, attention_mask=torch.ones_like(tensor), generation_config=config)
        seconds += time.perf_counter() - started
        outputs.append(out[0, len(ids) :].tolist())
    return seconds, outputs


def bench_case(model: PreTrainedModel, case: Case, repeats: int, seed: int) -> dict:
    warm = Case(case.name, case.prompts[:1], min(4, case.new_tokens))
    for use_cache in SETTINGS.values():  # allocation, kernel selection
        run(model, warm, use_cache, seed)
    seconds: dict[str, list[float]] = {name: [] for name in SETTINGS}
    tokens: dict[str, list[list[int]]] = {}
    for round_ in range(repeats):
        order = list(SETTINGS) if round_ % 2 == 0 else list(reversed(SETTINGS))
        for name in order:
            took, outputs = run(model, case, SETTINGS[name], seed)
            seconds[name].append(took)
            if name in tokens and tokens[name] != outputs:
                raise AssertionError(f"{case.name}: {name} wrote different tokens on round {round_}")
            tokens[name] = outputs
    if tokens["cache"] != tokens["no_cache"]:
        diverged = [i for i, (a, b) in enumerate(zip(tokens["cache"], tokens["no_cache"])) if a != b]
        raise AssertionError(f"{case.name}: greedy tokens differ with and without the cache (prompts {diverged})")
    new = sum(len(t) for t in tokens["cache"])
    if new != case.new_tokens * len(case.prompts):
        raise AssertionError(f"{case.name}: {new} new tokens, expected {case.new_tokens} per prompt")
    rate = {name: [new / s for s in seconds[name]] for name in SETTINGS}
    median = {name: statistics.median(r) for name, r in rate.items()}
    lengths = [len(p) for p in case.prompts]
    return {
        "prompts": len(case.prompts),
        "prompt_tokens": lengths,
        "new_tokens_per_prompt": case.new_tokens,
        "new_tokens_total": new,
        "context_at_end": [n + case.new_tokens for n in lengths],
        "tokens_per_s": {name: round(v, 1) for name, v in median.items()},
        "ms_per_token": {name: round(1000 / v, 2) for name, v in median.items()},
        "tokens_per_s_by_round": {name: [round(v, 1) for v in r] for name, r in rate.items()},
        "cache_speedup": round(median["cache"] / median["no_cache"], 2),
        "identical_tokens": True,
    }


def bench_model(
    name: str,
    model: PreTrainedModel,
    source: str,
    prompts: dict[str, list[list[int]]],
    new_tokens: int,
    repeats: int,
    seed: int,
) -> dict:
    room = model_context(model)
    cases = []
    for case_name, ids in prompts.items():
        fitting = [p[-(room - new_tokens) :] for p in ids]  # prompt + new tokens within the positions
        cases.append(Case(case_name, fitting, new_tokens))
    load = LoadRange()
    results = {}
    for case in cases:
        began = time.perf_counter()
        results[case.name] = bench_case(model, case, repeats, seed)
        load.sample()
        log.info(
            "%s %s (%s prompt tokens + %d new): cache %.1f tok/s, no cache %.1f tok/s, x%.2f (%.0f s)",
            name,
            case.name,
            results[case.name]["prompt_tokens"],
            new_tokens,
            results[case.name]["tokens_per_s"]["cache"],
            results[case.name]["tokens_per_s"]["no_cache"],
            results[case.name]["cache_speedup"],
            time.perf_counter() - began,
        )
    return {
        "source": source,
        "shape": shape(model),
        "contexts": results,
        "load_average_1min": load.summary(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {', '.join(MODELS)}")
    parser.add_argument(
        "--model",
        type=Path,
        default=REPO / "models" / "storyteller",
        help="the default model's folder (default: %(default)s)",
    )
    parser.add_argument(
        "--new-tokens", type=int, default=128, help="new tokens per prompt for the default model (default: %(default)s)"
    )
    parser.add_argument(
        "--new-tokens-124m", type=int, default=24, help="new tokens per prompt for gpt2-124m (default: %(default)s)"
    )
    parser.add_argument(
        "--prompts-124m",
        type=int,
        default=1,
        help="prompts per context for gpt2-124m, the first of each list (default: %(default)s)",
    )
    parser.add_argument(
        "--long-prompt",
        type=int,
        default=96,
        help="tokens of the long prompt (title + story opening) (default: %(default)s)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds per figure (default: %(default)s)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads; 0 for torch's default, one per core (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="torch seed before every generate (default: 0)")
    parser.add_argument("--config", type=Path, default=REPO / "params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="results JSON (default: %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    transformers.logging.set_verbosity_error()
    warnings.filterwarnings("ignore")
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    if unknown := [n for n in names if n not in MODELS]:
        parser.error(f"unknown model(s) {unknown}; choose from {', '.join(MODELS)}")
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    began = time.perf_counter()
    results = {}
    for name in names:
        model, source = build(name, args.model, args.config)
        prompts, prompt_source = prompt_ids(args.model, args.config, args.long_prompt, model.config.vocab_size)
        new_tokens = args.new_tokens_124m if name == "gpt2-124m" else args.new_tokens
        if name == "gpt2-124m":
            prompts = {case: ids[: args.prompts_124m] for case, ids in prompts.items()}
        results[name] = bench_model(name, model, source, prompts, new_tokens, args.repeats, args.seed)
        results[name]["prompt_source"] = prompt_source
        del model
    report = {
        "models": results,
        "decoding": "greedy (do_sample=False), min_new_tokens = max_new_tokens, no other processors",
        "repeats": args.repeats,
        "seed": args.seed,
        "machine": describe(),
        "seconds": round(time.perf_counter() - began, 1),
    }
    write_json(args.output, report)
    print_table(report)
    return 0


def print_table(report: dict) -> None:
    machine = report["machine"]
    print(
        f"\n{machine['cpu_model']}, {machine['logical_cpus']} CPUs, {machine['torch_threads']} torch threads; "
        f"torch {machine['torch']}, transformers {machine['transformers']}"
    )
    for name, result in report["models"].items():
        print(heading(name, result))
        for context, figures in result["contexts"].items():
            rate = figures["tokens_per_s"]
            print(
                f"  {context:5s} prompts {figures['prompt_tokens']} + {figures['new_tokens_per_prompt']} new: "
                f"cache {rate['cache']:.1f} tok/s, no cache {rate['no_cache']:.1f} tok/s, "
                f"cache/no-cache x{figures['cache_speedup']:.2f}"
            )


if __name__ == "__main__":
    raise SystemExit(main())
