"""The serving engine and cache on their own: continuous batching over a real onnxruntime session."""

import asyncio
import time

import pytest

from aitale.export.build import FP32, export_all
from aitale.generation.batch import generate_one
from aitale.generation.decoders import OnnxDecoder
from aitale.generation.sampling import GenerationSettings
from aitale.serve.cache import ResponseCache, cache_key
from aitale.serve.engine import QUEUE_TIMEOUT, TIMEOUT, Engine, Job
from tests.support.models import tiny_gpt2

SAMPLED = GenerationSettings(do_sample=True, temperature=0.9, top_k=20, max_new_tokens=24)


@pytest.fixture(scope="module")
def decoder(tmp_path_factory):
    model = tiny_gpt2(n_positions=128)
    saved, folder = tmp_path_factory.mktemp("model"), tmp_path_factory.mktemp("onnx")
    model.save_pretrained(saved)
    export_all(model, saved, folder, opset=17)
    return OnnxDecoder(folder / FP32)


def engine_for(decoder, **options) -> Engine:
    settings = {"max_batch": 8, "token_budget": 4096, "gather_s": 0.005, **options}
    engine = Engine(decoder, eos_token_id=0, decode=lambda ids: " ".join(map(str, ids)), **settings)
    engine.start()
    return engine


async def run(
    engine: Engine, prompt: list[int], settings: GenerationSettings, timeout_s: float = 30, queue_s: float = 30
):
    loop = asyncio.get_running_loop()
    job = Job(
        prompt, settings, deadline=time.monotonic() + timeout_s, queue_deadline=time.monotonic() + queue_s, loop=loop
    )
    engine.submit(job)
    tokens = []
    while True:
        kind, value = await job.events.get()
        if kind == "tokens":
            tokens += value
        elif kind == "end":
            return tokens, value.finish_reason
        else:
            return tokens, value


def test_concurrent_requests_share_steps_and_each_gets_its_own_seeded_tokens(decoder):
    engine = engine_for(decoder)
    steps = []
    engine.observe = type(
        "Observe",
        (),
        {
            "batch_size": lambda self, n: steps.append(n),
            "queue_wait": lambda self, s: None,
            "cancelled": lambda self: None,
        },
    )()
    prompts = [[5 + i, 6, 7] for i in range(6)]

    async def main():
        return await asyncio.gather(*(run(engine, p, SAMPLED.but(seed=i)) for i, p in enumerate(prompts)))

    try:
        results = asyncio.run(main())
    finally:
        engine.stop()
    alone = [generate_one(decoder, p, SAMPLED.but(seed=i), eos_token_id=0) for i, p in enumerate(prompts)]
    assert [tokens for tokens, _ in results] == alone  # fp32: a row never depends on the rows beside it
    assert max(steps) > 1  # rows ran side by side


def test_a_cancelled_request_leaves_the_batch_at_once(decoder):
    engine = engine_for(decoder)

    async def main():
        loop = asyncio.get_running_loop()
        job = Job(
            [5, 6],
            SAMPLED.but(max_new_tokens=100, min_new_tokens=100),
            deadline=time.monotonic() + 30,
            queue_deadline=time.monotonic() + 30,
            loop=loop,
        )
        engine.submit(job)
        await job.events.get()  # its first tokens: it is in the batch
        engine.cancel(job)
        while (event := await job.events.get())[0] == "tokens":
            pass
        return event, engine.running

    try:
        (kind, reason), running = asyncio.run(main())
    finally:
        engine.stop()
    assert (kind, reason, running) == ("error", "cancelled", 0)


def test_deadlines_and_queue_waits_end_requests_without_stopping_the_engine(decoder):
    engine = engine_for(decoder, max_batch=1)

    # Deadlines already past, so the outcome never depends on how fast this machine decodes: the
    # first request is admitted (its queue deadline is far) and cut at the next step; the second
    # may not wait for a row at all.
    async def main():
        slow = asyncio.create_task(run(engine, [5], SAMPLED.but(max_new_tokens=120, min_new_tokens=120), timeout_s=-1))
        waiting = asyncio.create_task(run(engine, [6], SAMPLED, queue_s=-1))
        results = [await slow, await waiting]
        results.append(await run(engine, [7], SAMPLED.but(seed=3)))  # the engine still serves
        return results

    try:
        (cut, slow), (_, waited), (tokens, after) = asyncio.run(main())
    finally:
        engine.stop()
    assert slow == TIMEOUT and waited == QUEUE_TIMEOUT
    assert 0 < len(cut) < 120  # it ran in the batch, then left it at its deadline
    assert after in ("length", "stop") and tokens


def test_the_cache_is_bounded_expires_and_shares_one_generation():
    now = [0.0]
    cache = ResponseCache(entries=2, ttl_s=10, clock=lambda: now[0])
    for name in "abc":
        cache.put(name, name.upper())
    assert cache.get("a") is None and cache.get("c") == "C" and len(cache) == 2  # least recently used went
    now[0] = 11
    assert cache.get("c") is None  # expired
    calls = []

    async def produce():
        calls.append(1)
        await asyncio.sleep(0.05)
        return "story"

    async def main():
        return await asyncio.gather(*(cache.shared("k", produce) for _ in range(3)))

    results = asyncio.run(main())
    assert calls == [1] and [value for value, _ in results] == ["story"] * 3
    assert sorted(shared for _, shared in results) == [False, True, True]

    async def failing():
        raise RuntimeError("the model failed")

    with pytest.raises(RuntimeError):
        asyncio.run(cache.shared("bad", failing))
    assert cache.get("bad") is None  # errors are never stored


def test_cache_keys_change_with_every_field_that_changes_the_output():
    base = {"prompt": "Once", "seed": 1, "temperature": 0.8}
    key = cache_key("sha", "", base)
    assert key == cache_key("sha", "", dict(reversed(base.items())))
    assert (
        len(
            {
                key,
                cache_key("other", "", base),
                cache_key("sha", "key-2", base),
                cache_key("sha", "", {**base, "seed": 2}),
            }
        )
        == 4
    )
