"""The generation core: one batched step loop over PyTorch and ONNX decoders, per-row seeds and stop rules."""

import numpy as np
import pytest
import torch

from aitale.export.build import FP32, export_all
from aitale.generation.batch import LENGTH, STOP, Batch, Row, generate, generate_one
from aitale.generation.decoders import OnnxDecoder, TorchDecoder
from aitale.generation.sampling import GenerationSettings
from tests.support.models import tiny_gpt2

PROMPTS = [[5, 6, 7], [8, 9, 10, 11, 12, 13], [20], [30, 31, 32, 33]]
SAMPLED = GenerationSettings(
    do_sample=True, temperature=0.9, top_k=20, top_p=0.9, no_repeat_ngram_size=2, max_new_tokens=30
)
GREEDY = GenerationSettings(do_sample=False, max_new_tokens=20)


@pytest.fixture(scope="module")
def model():
    return tiny_gpt2()


@pytest.fixture(scope="module")
def decoders(model, tmp_path_factory):
    saved, folder = tmp_path_factory.mktemp("model"), tmp_path_factory.mktemp("exported")
    model.save_pretrained(saved)
    export_all(model, saved, folder, opset=17)
    return {"pytorch": TorchDecoder(model), "onnx": OnnxDecoder(folder / FP32)}


@pytest.mark.parametrize("name", ["pytorch", "onnx"])
def test_greedy_tokens_equal_transformers_generate(model, decoders, name):
    for prompt in PROMPTS:
        reference = model.generate(
            torch.tensor([prompt]),
            attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
            do_sample=False,
            max_new_tokens=20,
            eos_token_id=0,
            pad_token_id=1,
        )
        assert generate_one(decoders[name], prompt, GREEDY) == reference[0, len(prompt) :].tolist()


@pytest.mark.parametrize("name", ["pytorch", "onnx"])
def test_a_seed_writes_the_same_tokens_alone_in_a_batch_or_joining_late(decoders, name):
    decoder = decoders[name]
    settings = [SAMPLED.but(seed=i) for i in range(len(PROMPTS))]
    alone = [generate_one(decoder, p, s) for p, s in zip(PROMPTS, settings)]
    together = [row.tokens for row in generate(decoder, PROMPTS, settings)]
    staggered = [row.tokens for row in generate(decoder, PROMPTS, settings, max_batch=2)]
    assert alone == together == staggered
    assert len({tuple(tokens) for tokens in alone}) == len(PROMPTS)  # different seeds, different stories


def test_rows_with_other_settings_share_a_batch(decoders):
    decoder = decoders["onnx"]
    mixed = [GREEDY, SAMPLED.but(seed=3), SAMPLED.but(seed=3, temperature=0.5, top_k=0), GREEDY.but(max_new_tokens=4)]
    rows = generate(decoder, PROMPTS, mixed)
    assert [row.tokens for row in rows] == [generate_one(decoder, p, s) for p, s in zip(PROMPTS, mixed)]
    assert len(rows[3].tokens) == 4 and rows[3].finish_reason == LENGTH


def test_rows_are_prefilled_together_into_slots_and_leaving_rows_free_theirs(decoders):
    decoder = decoders["onnx"]
    batch = Batch(decoder)
    long, short = Row([3] * 30, GREEDY.but(max_new_tokens=2)), Row([4, 5], GREEDY.but(max_new_tokens=10))
    batch.admit([long, short])  # one prefill call, each prompt from column 0 of its slot
    assert batch.slots.lengths[:2].tolist() == [30, 2] and batch.slots.mask[1, :-1].sum() == 2
    assert [long.tokens, short.tokens] == [generate_one(decoder, r.prompt, r.settings)[:1] for r in (long, short)]
    while long in batch.rows:
        batch.advance()
    assert batch.rows == [short]  # the long row's slot is free, the short row moved into the first
    assert batch.slots.lengths[0] == len(short.prompt) + len(short.tokens) - 1 and batch.slots.lengths[1] == 0
    batch.remove([short])
    assert len(batch) == 0 and short.finish_reason == "cancelled"


def test_end_of_text_waits_for_min_new_tokens(decoders):
    decoder = decoders["onnx"]
    eos = generate_one(decoder, PROMPTS[0], GREEDY.but(max_new_tokens=1))[0]  # the first greedy token, as "eos"
    assert generate(decoder, [PROMPTS[0]], GREEDY, eos_token_id=eos)[0].finish_reason == STOP
    row = generate(decoder, [PROMPTS[0]], GREEDY.but(min_new_tokens=5), eos_token_id=eos)[0]
    assert len(row.tokens) >= 5 and eos not in row.tokens[:5]


def test_a_stop_string_ends_the_row_before_it(decoders):
    decoder = decoders["onnx"]
    plain = generate_one(decoder, PROMPTS[1], GREEDY)
    decode = lambda ids: " ".join(map(str, ids))
    stop = f" {plain[3]} {plain[4]}"  # the text of the 4th and 5th tokens
    row = generate(decoder, [PROMPTS[1]], GREEDY.but(stop=(stop,)), decode=decode)[0]
    assert row.finish_reason == STOP and row.stop_text == decode(plain[:3]) and len(row.tokens) == 5


def test_the_context_bounds_every_row(decoders):
    decoder = decoders["onnx"]
    rows = generate(decoder, [list(range(5, 60)), [7]], GREEDY.but(max_new_tokens=100))
    assert len(rows[0].tokens) == 64 - 55 and rows[0].finish_reason == LENGTH
    assert len(rows[1].tokens) == 63
    assert np.all(np.array(rows[0].tokens) < 300)


def test_the_pytorch_decoder_steps_on_the_decode_threads_and_restores_the_callers(decoders):
    from aitale.machine import DECODE_THREADS

    decoder = decoders["pytorch"]
    seen = []
    hook = decoder.module.register_forward_pre_hook(lambda *_: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    torch.set_num_threads(DECODE_THREADS + 1)
    try:
        generate_one(decoder, PROMPTS[0], GREEDY.but(max_new_tokens=3))
        assert torch.get_num_threads() == DECODE_THREADS + 1  # the caller's count, back
    finally:
        torch.set_num_threads(before)
        hook.remove()
    assert seen and set(seen) == {DECODE_THREADS}
