"""Load on the story service: continuous batching against one request at a time, and the cache.

Starts the real server (``python -m aitale.serve``) on a free 127.0.0.1 port for each model and
setting, sends a fixed number of requests with a fixed concurrency under a global timeout (only
ever to 127.0.0.1), and reports tokens/s, requests/s, p50/p95/p99 latency, time to first streamed
text and the status counts. In one run, for the default model (``models/onnx``) and a GPT-2
124M-shaped model built from its config and exported here:

- 16 concurrent clients with ``AITALE_SERVE_MAX_BATCH=16`` against ``AITALE_SERVE_MAX_BATCH=1``
  (goal: at least 3x the tokens/s);
- a cache hit against a miss for the same seeded story (goal: at least 50x lower latency);
- p95 time to first token at 16 clients (the server's own histogram, beside the client's first text).

    .venv/bin/python -m benchmarks.serve_load                 # both models (the 124M export takes minutes)
    .venv/bin/python -m benchmarks.serve_load --models default --requests 32

Results: benchmarks/results/serve.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from aitale.io import write_json
from aitale.machine import LoadRange, describe
from tests.serve.serving import serve

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks/results/serve.json"
GPT2_124M = {"n_layer": 12, "n_head": 12, "n_embd": 768, "n_positions": 1024}


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))], 4)


async def load(url: str, requests: int, concurrency: int, tokens: int, timeout_s: float) -> dict:
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
        "requests": requests,
        "concurrency": concurrency,
        "tokens_per_request": tokens,
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


def cache_figures(url: str, repeats: int = 5) -> dict:
    """Latency of a seeded story the first time (a miss) and again (a hit), medians over ``repeats`` seeds."""
    misses, hits = [], []
    with httpx.Client(base_url=url, timeout=120) as http:
        for seed in range(repeats):
            body = {
                "title": "The Lantern Fox",
                "age_group": "3-5",
                "themes": ["courage"],
                "style": "bedtime",
                "seed": 1000 + seed,
                "max_tokens": 64,
            }
            for bucket, expected in ((misses, "miss"), (hits, "hit")):
                began = time.perf_counter()
                response = http.post("/v1/stories", json=body)
                bucket.append(time.perf_counter() - began)
                assert response.headers.get("X-Cache") == expected, response.headers
    miss, hit = statistics.median(misses), statistics.median(hits)
    return {
        "miss_ms": round(miss * 1000, 2),
        "hit_ms": round(hit * 1000, 3),
        "speedup": round(miss / hit, 1),
        "goal": 50,
        "met": miss / hit >= 50,
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
    export_all(model, saved, folder / "onnx", opset=17)
    return folder / "onnx"


def run_model(name: str, model_dir: Path, screen_dir: Path, args, logs: Path) -> dict:
    result: dict = {}
    project = logs / f"{name}-project"
    (project / "models").mkdir(parents=True)
    (project / "models/onnx").symlink_to(model_dir.resolve())
    (project / "models/safety").symlink_to(screen_dir.resolve())
    for label, max_batch in (("batched", args.max_batch), ("one_at_a_time", 1)):
        # one client address, many requests: the per-key limits (there for abuse) would refuse most of them
        unlimited = {"key_rate_per_minute": 1e6, "key_burst": 100_000, "key_in_flight": 1024}
        with serve(
            project,
            logs,
            max_batch=max_batch,
            max_in_flight=1024,
            cache_entries=0,
            request_timeout_s=args.timeout,
            **unlimited,
        ) as server:
            asyncio.run(load(server.url, min(8, args.requests), args.concurrency, args.tokens, args.timeout))  # warm
            result[label] = asyncio.run(load(server.url, args.requests, args.concurrency, args.tokens, args.timeout))
            result[label]["max_batch"] = max_batch
            result[label]["server_ttft_p95_s"] = server_ttft_p95(server.url)
        print(f"{name} {label}: {result[label]['tokens_per_s']} tokens/s, p95 {result[label]['latency_s']['p95']} s")
    result["batching_speedup"] = round(result["batched"]["tokens_per_s"] / result["one_at_a_time"]["tokens_per_s"], 2)
    result["batching_goal"] = {"goal": 3.0, "met": result["batching_speedup"] >= 3.0}
    with serve(project, logs) as server:
        result["cache"] = cache_figures(server.url)
    print(f"{name}: batching x{result['batching_speedup']}, cache hit x{result['cache']['speedup']}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="default,gpt2-124m", help="default and/or gpt2-124m (comma-separated)")
    parser.add_argument("--requests", type=int, default=64, help="requests per measurement (default: %(default)s)")
    parser.add_argument("--concurrency", type=int, default=16, help="clients at once (default: %(default)s)")
    parser.add_argument("--tokens", type=int, default=48, help="tokens each request writes (default: %(default)s)")
    parser.add_argument("--max-batch", type=int, default=16, help="the batched server's rows (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds a measurement may take in all")
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
            model_dir = onnx if name == "default" else gpt2_124m_export(REPO, logs / name)
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
            "settings": vars(args),
            "models": results,
        },
    )
    print(f"results written to {args.output}")


if __name__ == "__main__":
    main()
