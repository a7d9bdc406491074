"""The generation mask: a word an age group's policy never allows is never written, by either decoder."""

import numpy as np
import pytest
import torch
import yaml
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from tokenizers import decoders as token_decoders

from aitale.export.build import FP32, export_all
from aitale.generation.batch import generate
from aitale.generation.decoders import OnnxDecoder, TorchDecoder
from aitale.generation.sampling import GenerationSettings
from aitale.safety.mask import TokenMask, policy_words, token_texts
from aitale.safety.rules import Rules
from tests.support.models import tiny_gpt2
from tests.support.repo import REPO

RULES = Rules(yaml.safe_load((REPO / "data/safety/rules.yaml").read_text()))
SENTENCES = [
    "the murder of the fox was murdered by murders",
    "the mur der mur der the fox and the hen",
    "the kind fox and the red hen sang a song",
    "the fox the hen the murder the song",
] * 20


@pytest.fixture(scope="module")
def tokenizer():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = token_decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(SENTENCES, trainer)
    return tok


def biased_model(tokenizer, favoured: dict[str, float]):
    """A tiny GPT-2 whose every next-token score is the same: ``favoured`` token texts far above the rest."""
    model = tiny_gpt2(vocab_size=tokenizer.get_vocab_size(), eos=0, pad=0)
    with torch.no_grad():
        width = model.config.n_embd
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.copy_(torch.ones(width))
        model.transformer.wte.weight.mul_(0.01)
        for text, score in favoured.items():
            model.transformer.wte.weight[tokenizer.token_to_id(text)] = score / width
    return model


@pytest.fixture(scope="module")
def decoders(tokenizer, tmp_path_factory):
    model = biased_model(tokenizer, {"Ġmurder": 9.0, "Ġmur": 8.5, "der": 8.5, "Ġthe": 8.0, "Ġfox": 8.0})
    saved, folder = tmp_path_factory.mktemp("model"), tmp_path_factory.mktemp("exported")
    model.save_pretrained(saved)
    export_all(model, saved, folder, opset=17)
    return {"pytorch": TorchDecoder(model), "onnx": OnnxDecoder(folder / FP32)}


def written(decoder, tokenizer, masks):
    prompt = tokenizer.encode("the fox").ids
    settings = [GenerationSettings(do_sample=True, top_k=5, max_new_tokens=24, seed=seed) for seed in range(12)]
    rows = generate(decoder, [prompt] * len(settings), settings, masks=masks and masks * len(settings))
    return [tokenizer.decode(prompt + row.tokens) for row in rows]


@pytest.mark.parametrize("name", ["pytorch", "onnx"])
def test_a_masked_word_is_never_written_whole_or_in_pieces(decoders, tokenizer, name):
    assert {"murder", "murdered", "murders"} <= set(policy_words(RULES, "3-5"))
    mask = TokenMask(token_texts(tokenizer), policy_words(RULES, "3-5"))
    free = written(decoders[name], tokenizer, None)
    assert sum("murder" in text for text in free) >= 10  # biased to write it: whole, and as " mur" + "der"
    assert any("murder" in text.replace(" murder", "") for text in free)
    guarded = written(decoders[name], tokenizer, [mask])
    assert not any("murder" in text.lower() for text in guarded), guarded
    assert all(" mur" in text or " the" in text for text in guarded)  # the rest of its choice is left alone


def test_the_mask_follows_the_age_policy_and_spares_lookalikes(tokenizer):
    texts = token_texts(tokenizer)
    young = TokenMask(texts, policy_words(RULES, "3-5"))
    old = TokenMask(texts, policy_words(RULES, "9-12"))
    the = tokenizer.encode("the fox the").ids
    assert "kill" in policy_words(RULES, "3-5") and "kill" not in policy_words(RULES, "9-12")
    assert "murder" not in policy_words(RULES, "9-12")  # murder is a 9-12 term: told in one line is allowed
    murder = tokenizer.token_to_id("Ġmurder")
    assert young.banned(the)[murder] and not old.banned(the)[murder]
    der = tokenizer.token_to_id("der")
    after_mur = tokenizer.encode("the fox mur").ids
    assert young.banned(after_mur)[der]  # " mur" + "der" would spell it
    assert not young.banned(tokenizer.encode("the fox hamur").ids)[der]  # inside another word: not a word start
    assert not young.banned(the)[der]
    assert np.count_nonzero(young.banned(the)) < len(texts) // 10  # most of the vocabulary stays open


def test_tell_draws_with_its_age_groups_mask(tokenizer, tmp_path, content_screen):
    """The story policy's writer gets the request's mask: a model that would write "murder" tells a story
    without it, where the same draw unmasked writes it."""
    from transformers import GenerationConfig, PreTrainedTokenizerFast

    from aitale.generation.story import StoryRequest
    from aitale.generation.teller import Teller
    from aitale.generation.writer import Writer

    model = biased_model(tokenizer, {"Ġmurder": 9.0, "Ġthe": 8.0, "Ġfox": 8.0, ".": 7.0})
    model.generation_config = GenerationConfig(do_sample=True, top_k=5, max_new_tokens=24, min_new_tokens=0)
    model.save_pretrained(tmp_path)
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>").save_pretrained(tmp_path)
    writer = Writer.load(tmp_path)
    [free] = writer.write(["the fox"], [writer.defaults.but(seed=3)])
    assert "murder" in free.text
    teller = Teller(writer, content_screen, "biased", "0" * 64)
    told = teller.tell(StoryRequest(title="The Fox", age_group="3-5"), seed=3)
    assert "murder" not in told.text.lower() and told.text
