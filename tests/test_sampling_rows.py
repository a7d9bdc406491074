"""The batch loop's sampler (:func:`next_tokens`, every row of a step at once, histories kept token by token) picks
the tokens that :func:`process` and :func:`choose` pick row by row, which tests/test_export.py pins to transformers."""

import numpy as np

from aitale.generation.sampling import GenerationSettings, History, banned_ngram_tokens, choose, next_tokens, process

SETTINGS = [
    GenerationSettings(do_sample=False),
    GenerationSettings(do_sample=False, no_repeat_ngram_size=2, repetition_penalty=1.3, min_new_tokens=5),
    GenerationSettings(temperature=0.8, top_k=50, top_p=0.9, no_repeat_ngram_size=3),
    GenerationSettings(temperature=1.3, top_k=5),
    GenerationSettings(temperature=0.5, top_p=0.5, repetition_penalty=1.2),
    GenerationSettings(temperature=1.0),
    GenerationSettings(temperature=1e-40, top_k=50),  # greedy: too small to divide by in float32
    GenerationSettings(temperature=0.7, top_k=50, top_p=0.95, no_repeat_ngram_size=1),
]


def test_the_history_bans_what_a_scan_of_every_id_bans():
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 4):
        ids = rng.integers(0, 6, size=40).tolist()
        history = History(ids[:3], GenerationSettings(no_repeat_ngram_size=n))
        for length in range(3, len(ids)):
            assert history.banned() == banned_ngram_tokens(ids[:length], n), (n, length)
            history.add(ids[length])


def test_all_rows_at_once_pick_the_tokens_of_one_row_at_a_time():
    rng = np.random.default_rng(1)
    vocab, eos = 300, 7
    prompts = [rng.integers(0, vocab, size=int(rng.integers(1, 30))).tolist() for _ in SETTINGS]
    rows = [
        {"ids": list(p), "new": 0, "rng": np.random.default_rng(i), "ref": np.random.default_rng(i)}
        for i, p in enumerate(prompts)
    ]
    histories = [History(p, s) for p, s in zip(prompts, SETTINGS)]
    for _ in range(40):
        logits = (rng.standard_normal((len(SETTINGS), vocab)) * 4).astype(np.float32)
        expected = [
            choose(process(logits[i], row["ids"], row["new"], s, eos), s, row["ref"])
            for i, (row, s) in enumerate(zip(rows, SETTINGS))
        ]
        got = next_tokens(logits, SETTINGS, histories, [r["new"] for r in rows], [r["rng"] for r in rows], eos)
        assert got == expected
        for row, history, token in zip(rows, histories, got):
            row["ids"].append(token)
            row["new"] += 1
            history.add(token)
