"""Load on the story service, and the engine under it, on the default model and a GPT-2 124M shape.

For each model (``default``: models/onnx; ``gpt2-124m``: GPT-2 124M's shape with random weights built from
its config, the project's tokenizer, exported here as the export stage does):

- **serving**: the real server (``python -m aitale.serve``) twice on free 127.0.0.1 ports, batched
  (``AITALE_SERVE_MAX_BATCH=16``) and one request at a time (``=1``), both up at once; rounds of 16
  clients each sending seeded 64-token completions (as a new user tried it; the cache off) take turns on
  the two, ``--repeats`` times, the 1-minute load average beside each round. Tokens/s, latency, the
  client's time to first text and the server's p95 time to first token (goal: batched >= 3x the tokens/s
  on the default model, >= 5x at 124M);
- **engine** (in process, no HTTP; the INT8 file): tokens/s at batch 8 against batch 1; ms per token at
  batch 1 (each decoding step timed: the median, and the best as the least disturbed by other processes)
  against the weight-streaming floor, the INT8 file's bytes over the memory bandwidth a copy measures on
  this machine, STREAM's way (bytes read plus written; goal: at most 2x the floor at 124M); onnxruntime's
  idle threads spinning against not (``session.intra_op.allow_spinning``), interleaved;
- **cache**: a seeded story's first request (a miss) against the same request again (a hit), medians
  (goal: the hit at least 100x faster).

A load test from one machine needs no API keys: a keyless server on loopback applies no per-key limits
(docs/serving.md). Run it on a quiet machine where you can; the load average says how quiet it was.

    .venv/bin/python -m benchmarks.serve_load                 # both models (the 124M export takes minutes)
    .venv/bin/python -m benchmarks.serve_load --models default --repeats 3

Results: benchmarks/results/serve.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import httpx
import numpy as np

from aitale.io import write_json
from aitale.machine import LoadRange, describe
from tests.serve.serving import serve

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks/results/serve.json"
GPT2_124M = {"n_layer": 12, "n_head": 12, "n_embd": 768, "n_positions": 1024}
GOALS = {"default": 3.0, "gpt2-124m": 5.0}  # batched against one at a time, tokens/s at 16 clients
CACHE_GOAL, FLOOR_GOAL = 100, 2.0


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))], 4)


async def load(url: str, requests: int, concurrency: int, tokens: int, timeout_s: float, seeded: bool) -> dict:
    """``requests`` streamed completions of exactly ``tokens`` tokens, ``concurrency`` at a time."""
    statuses: Counter = Counter()
    latencies, first_text, written = [], [], 0
    queue: asyncio.Queue = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal written
        while not queue.empty():
            i = queue.get_nowait()
            body = {
                "model": "storyteller",
                "prompt": f"Once upon a time, story number {i}, there lived",
                "max_tokens": tokens,
                "min_tokens": tokens,
                "temperature": 0.8,
                "stream": True,
                "stream_options": {"include_usage": True},
                **({"seed": i} if seeded else {}),
            }
            began, first = time.perf_counter(), None
            try:
                async with http.stream("POST", "/v1/completions", json=body) as response:
                    statuses[response.status_code] += 1
                    async for line in response.aiter_lines():
                        if not line.startswith("data: ") or line == "data: [DONE]":
                            continue
                        chunk = json.loads(line[6:])
                        if first is None and chunk.get("choices") and chunk["choices"][0]["text"]:
                            first = time.perf_counter() - began
                        if chunk.get("usage"):
                            written += chunk["usage"]["completion_tokens"]
            except httpx.HTTPError as err:
                statuses[type(err).__name__] += 1
                continue
            latencies.append(time.perf_counter() - began)
            if first is not None:
                first_text.append(first)

    began = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=timeout_s) as http:
        await asyncio.wait_for(asyncio.gather(*(client(http) for _ in range(concurrency))), timeout=timeout_s)
    seconds = time.perf_counter() - began
    return {
        "seconds": round(seconds, 2),
        "tokens_per_s": round(written / seconds, 1),
        "requests_per_s": round(len(latencies) / seconds, 2),
        "latency_s": {f"p{q}": percentile(latencies, q) for q in (50, 95, 99)},
        "first_text_s": {f"p{q}": percentile(first_text, q) for q in (50, 95)},
        "statuses": {str(k): v for k, v in statuses.items()},
    }


def server_ttft_p95(url: str) -> float | None:
    """The p95 of the server's time-to-first-token histogram (the upper bound of its bucket)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        if family.name == "aitale_time_to_first_token_seconds":
            buckets = [(float(s.labels["le"]), s.value) for s in family.samples if s.name.endswith("_bucket")]
            total = max(count for _, count in buckets)
            return next((bound for bound, count in sorted(buckets) if count >= 0.95 * total), None)
    return None


def serving_figures(name: str, project: Path, args, logs: Path) -> dict:
    """The batched and the one-at-a-time server, up together, taking turns round by round."""
    settings = {"max_in_flight": 1024, "cache_entries": 0, "request_timeout_s": args.timeout}
    servers, rounds = {}, {"batched": [], "one_at_a_time": []}
    tokens, requests = args.tokens, args.requests if name == "default" else args.requests_124m
    run = lambda url: asyncio.run(load(url, requests, args.concurrency, tokens, args.timeout, args.seeded))  # noqa: E731
    with ExitStack() as stack:
        for label, max_batch in (("batched", args.max_batch), ("one_at_a_time", 1)):
            servers[label] = stack.enter_context(serve(project, logs, max_batch=max_batch, **settings))
            asyncio.run(load(servers[label].url, 4, 4, 8, args.timeout, args.seeded))  # warm
        for repeat in range(args.repeats):
            order = list(rounds) if repeat % 2 == 0 else list(rounds)[::-1]
            for label in order:
                before = os.getloadavg()[0]
                figures = run(servers[label].url)
                figures["load_average_1min"] = [round(before, 2), round(os.getloadavg()[0], 2)]
                rounds[label].append(figures)
                print(f"{name} {label} round {repeat}: {figures['tokens_per_s']} tokens/s (load {before:.1f})")
        ttft = {label: server_ttft_p95(server.url) for label, server in servers.items()}
    result = {}
    for label, measured in rounds.items():
        result[label] = {
            "tokens_per_s": round(statistics.median(r["tokens_per_s"] for r in measured), 1),
            "max_batch": args.max_batch if label == "batched" else 1,
            "server_ttft_p95_s": ttft[label],
            "first_text_p95_s": statistics.median(r["first_text_s"]["p95"] or 0 for r in measured),
            "rounds": measured,
        }
    speedups = [b["tokens_per_s"] / o["tokens_per_s"] for b, o in zip(rounds["batched"], rounds["one_at_a_time"])]
    result["batching_speedup"] = round(result["batched"]["tokens_per_s"] / result["one_at_a_time"]["tokens_per_s"], 2)
    result["batching_speedup_per_round"] = [round(s, 2) for s in speedups]
    result["batching_goal"] = {"goal": GOALS[name], "met": result["batching_speedup"] >= GOALS[name]}
    result["setup"] = {"clients": args.concurrency, "requests": requests, "tokens": tokens, "seeded": args.seeded}
    return result


def cache_figures(url: str, repeats: int = 5) -> dict:
    """A seeded story the first time (a miss) and again (a hit), medians over ``repeats`` seeds: as the client
    sees it (its own time in Python included) and as the server took it (its Server-Timing header)."""
    client: dict[str, list[float]] = {"miss": [], "hit": []}
    server: dict[str, list[float]] = {"miss": [], "hit": []}
    with httpx.Client(base_url=url, timeout=120) as http:
        for seed in range(repeats):
            body = {"title": "The Lantern Fox", "age_group": "3-5", "themes": ["courage"], "style": "bedtime"}
            body |= {"seed": 1000 + seed, "max_tokens": 64}
            for expected in ("miss", "hit", "hit"):
                began = time.perf_counter()
                response = http.post("/v1/stories", json=body)
                client[expected].append((time.perf_counter() - began) * 1000)
                server[expected].append(float(response.headers["Server-Timing"].split("dur=")[1]))
                assert response.headers.get("X-Cache") == expected, response.headers
    figures = {}
    for side, times in (("server", server), ("client", client)):
        miss, hit = statistics.median(times["miss"]), statistics.median(times["hit"])
        figures[side] = {"miss_ms": round(miss, 2), "hit_ms": round(hit, 3), "speedup": round(miss / hit, 1)}
    return {
        **figures["client"],  # the fields' names of the earlier runs: the client's view
        "server_side": figures["server"],
        "goal": CACHE_GOAL,
        "met": figures["server"]["speedup"] >= CACHE_GOAL,
        "met_by": "server_side",
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def copy_bandwidth(megabytes: int = 256, repeats: int = 5) -> dict:
    """Memory bandwidth from copying a buffer far larger than the caches, on one thread and on every core
    (each thread its own part), best of ``repeats``; STREAM's convention: bytes read plus bytes written."""
    source = np.ones(megabytes * 2**20 // 8)
    target = np.empty_like(source)
    figures = {}
    for threads in sorted({1, len(os.sched_getaffinity(0))}):
        parts = np.array_split(np.arange(source.size), threads)
        spans = [(int(p[0]), int(p[-1]) + 1) for p in parts]
        best = float("inf")
        for _ in range(repeats):
            workers = [threading.Thread(target=np.copyto, args=(target[a:b], source[a:b])) for a, b in spans]
            began = time.perf_counter()
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            best = min(best, time.perf_counter() - began)
        figures[f"{threads}_threads_gb_s"] = round(2 * source.nbytes / best / 1e9, 2)
    figures["gb_s"] = max(figures.values())
    return figures


def timed_generation(decoder, prompts: list[list[int]], tokens: int, max_batch: int) -> float:
    """Seconds to write ``tokens`` greedy-free sampled tokens after each prompt, ``max_batch`` rows at a time."""
    from aitale.generation.batch import generate
    from aitale.generation.sampling import GenerationSettings

    settings = [
        GenerationSettings(temperature=0.8, top_k=50, top_p=0.9, no_repeat_ngram_size=3, seed=i).but(
            max_new_tokens=tokens, min_new_tokens=tokens
        )
        for i in range(len(prompts))
    ]
    began = time.perf_counter()
    generate(decoder, prompts, settings, eos_token_id=decoder.eos_token_id, max_batch=max_batch)
    return time.perf_counter() - began


def step_times(decoder, prompt: list[int], tokens: int) -> list[float]:
    """Seconds of each decoding step of one row (batch 1) after its prefill: the per-token time."""
    from aitale.generation.batch import Batch, Row
    from aitale.generation.sampling import GenerationSettings

    settings = GenerationSettings(temperature=0.8, top_k=50, top_p=0.9, no_repeat_ngram_size=3, seed=0)
    batch = Batch(decoder)
    batch.admit([Row(prompt, settings.but(max_new_tokens=tokens, min_new_tokens=tokens))])
    times = []
    while batch.rows:
        began = time.perf_counter()
        batch.advance()
        times.append(time.perf_counter() - began)
    return times


def engine_figures(model_dir: Path, args) -> dict:
    """Batch 8 against batch 1, ms/token against the weight-streaming floor, spinning against not: INT8, in
    process, each pair interleaved ``--repeats`` times."""
    from aitale.generation.codec import Codec
    from aitale.generation.decoders import VARIANT_FILES, OnnxDecoder

    path = model_dir / VARIANT_FILES["onnx-int8"]
    codec = Codec(model_dir)
    prompts = [codec.encode(f"Once upon a time, story number {i}, there lived") for i in range(8)]
    tokens = args.engine_tokens
    decoders = {spin: OnnxDecoder(path, spinning=spin) for spin in ("0", "1")}
    for decoder in decoders.values():
        timed_generation(decoder, prompts[:1], 4, 1)  # warm
    seconds: dict[str, list[float]] = {"batch_1": [], "batch_8": [], "batch_8_spinning": []}
    steps, loads, copies = [], [], []
    for _ in range(args.repeats):
        loads.append(round(os.getloadavg()[0], 2))
        seconds["batch_1"].append(timed_generation(decoders["0"], prompts[:2], tokens, 1) / 2)
        seconds["batch_8"].append(timed_generation(decoders["0"], prompts, tokens, 8))
        seconds["batch_8_spinning"].append(timed_generation(decoders["1"], prompts, tokens, 8))
        steps += step_times(decoders["0"], prompts[0], tokens)
        copies.append(copy_bandwidth())  # between the timings: the floor from the machine as they had it
    rows = {"batch_1": 1, "batch_8": len(prompts), "batch_8_spinning": len(prompts)}  # batch_1: seconds per row
    per_s = {k: round(rows[k] * tokens / statistics.median(v), 1) for k, v in seconds.items()}
    bandwidth = max(copies, key=lambda c: c["gb_s"])  # the fastest copy: the strictest floor
    weight_bytes = path.stat().st_size
    floor_ms = weight_bytes / (bandwidth["gb_s"] * 1e9) * 1000
    step_ms = {"median": statistics.median(steps) * 1000, "best": min(steps) * 1000}
    return {
        "variant": "onnx-int8",
        "tokens_per_s": per_s,
        "batch_8_vs_batch_1": round(per_s["batch_8"] / per_s["batch_1"], 2),
        "spinning_vs_not_at_batch_8": round(per_s["batch_8_spinning"] / per_s["batch_8"], 2),
        "batch_1_ms_per_token": round(step_ms["median"], 3),
        "batch_1_ms_per_token_best": round(step_ms["best"], 3),
        "int8_weight_bytes": weight_bytes,
        "copy_bandwidth": {**bandwidth, "each_repeat_gb_s": [c["gb_s"] for c in copies]},
        "weight_streaming_floor_ms": round(floor_ms, 3),
        "ms_per_token_vs_floor": round(step_ms["median"] / floor_ms, 2),
        "best_ms_per_token_vs_floor": round(step_ms["best"] / floor_ms, 2),
        "floor_goal": {"goal": FLOOR_GOAL, "met": step_ms["median"] / floor_ms <= FLOOR_GOAL},
        "load_average_1min": loads,
        "setup": {"new_tokens": tokens, "prompts": len(prompts), "repeats": args.repeats},
    }


def gpt2_124m_export(project: Path, folder: Path) -> Path:
    """A GPT-2 124M-shaped model (random weights, the project's tokenizer) exported as the export stage does."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from aitale.export.build import export_all
    from aitale.generation.config import generation_config
    from aitale.params import GenerateParams, load_section

    tokenizer = AutoTokenizer.from_pretrained(project / "models/storyteller")
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **GPT2_124M,
    )
    saved = folder / "model"
    model = GPT2LMHeadModel(config).eval()
    model.save_pretrained(saved)
    tokenizer.save_pretrained(saved)
    generation_config(load_section(GenerateParams, "generate", project / "params.yaml"), tokenizer).save_pretrained(
        saved
    )
    (folder / "onnx").mkdir(parents=True, exist_ok=True)
    export_all(model, saved, folder / "onnx", opset=17)
    return folder / "onnx"


def run_model(name: str, model_dir: Path, screen_dir: Path, args, logs: Path) -> dict:
    project = logs / f"{name}-project"
    (project / "models").mkdir(parents=True)
    (project / "models/onnx").symlink_to(model_dir.resolve())
    (project / "models/safety").symlink_to(screen_dir.resolve())
    result = serving_figures(name, project, args, logs)
    print(f"{name}: batching x{result['batching_speedup']} ({result['batching_speedup_per_round']})")
    with serve(project, logs) as server:
        result["cache"] = cache_figures(server.url)
    print(f"{name}: cache hit x{result['cache']['speedup']} (server side x{result['cache']['server_side']['speedup']})")
    result["engine"] = engine_figures(model_dir, args)
    engine = result["engine"]
    print(
        f"{name} engine: batch 8 x{engine['batch_8_vs_batch_1']} batch 1, {engine['batch_1_ms_per_token']} ms/token "
        f"= {engine['ms_per_token_vs_floor']} x the floor, spinning x{engine['spinning_vs_not_at_batch_8']}"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="default,gpt2-124m", help="default and/or gpt2-124m (comma-separated)")
    parser.add_argument("--requests", type=int, default=64, help="requests per round, default model (%(default)s)")
    parser.add_argument("--requests-124m", type=int, default=32, help="requests per round at 124M (%(default)s)")
    parser.add_argument("--concurrency", type=int, default=16, help="clients at once (default: %(default)s)")
    parser.add_argument("--tokens", type=int, default=64, help="tokens each request writes (default: %(default)s)")
    parser.add_argument("--max-batch", type=int, default=16, help="the batched server's rows (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of each, taking turns (default: %(default)s)")
    parser.add_argument("--engine-tokens", type=int, default=48, help="tokens per row in the engine figures")
    parser.add_argument("--seeded", action=argparse.BooleanOptionalAction, default=True, help="seeded requests")
    parser.add_argument("--gpt2-dir", type=Path, help="reuse a 124M export this benchmark built before")
    parser.add_argument("--timeout", type=float, default=900, help="seconds a round may take in all")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()
    onnx, screen = REPO / "models/onnx", REPO / "models/safety"
    if not (onnx / "manifest.json").is_file() or not screen.is_dir():
        raise SystemExit("models/onnx and models/safety are missing: run `make repro` first")
    load_range = LoadRange()
    results = {}
    logs = Path(tempfile.mkdtemp(prefix="serve-load-"))
    try:
        for name in args.models.split(","):
            model_dir = onnx if name == "default" else args.gpt2_dir or gpt2_124m_export(REPO, logs / name)
            results[name] = run_model(name, model_dir, screen, args, logs)
            load_range.sample()
    finally:
        shutil.rmtree(logs, ignore_errors=True)
    write_json(
        args.output,
        {
            "benchmark": "benchmarks.serve_load",
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": describe(),
            "load_average_1min": load_range.summary(),
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "models": results,
        },
    )
    print(f"results written to {args.output}")


if __name__ == "__main__":
    main()
