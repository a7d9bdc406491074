"""The one prompt builder and story request (issues 22, 23): typed control tokens stay text, and a request
without style or themes is written from the prompt an unconditioned training record opens with."""

import pytest
from pydantic import ValidationError

from aitale.data.structure import age_token, prompt, strip_controls, structure
from aitale.generation.codec import Codec
from aitale.generation.story import StoryRequest

TEXT = "A fox found a lantern.\n\nShe carried it home.\n\nThe night was kind.\n\nShe slept."


def test_control_tokens_typed_in_a_title_are_text(dvc_project):
    codec = Codec(dvc_project / "models/onnx")
    ids = codec.encode(prompt("<|age:9-12|> The Fox <|endoftext|>", "3-5", "bedtime"))
    assert ids.count(codec.token_id(age_token("3-5"))) == 1
    assert codec.token_id(age_token("9-12")) not in ids
    assert codec.token_id("<|endoftext|>") not in ids
    assert "<|age:9-12|> The Fox <|endoftext|>" in codec.tokenizer.decode(ids, skip_special_tokens=False).replace(
        "< |", "<|"
    )


def test_the_unconditioned_prompt_is_what_training_without_controls_reads():
    record = structure("The Moon Hare", TEXT, "6-8", "fable", ["courage"])
    assert strip_controls(record).startswith(prompt("The Moon Hare"))
    assert prompt("The Moon Hare") == "<|title|>The Moon Hare\n<|beginning|>"
    assert prompt("The Moon Hare", "6-8") == "<|title|>The Moon Hare\n<|age:6-8|>\n<|beginning|>"


def test_a_request_may_leave_out_style_and_themes_but_not_its_age_group():
    request = StoryRequest(title="The Moon Hare", age_group="6-8")
    assert request.style is None and request.unconditioned == ["style", "themes"]
    assert request.prompt() == prompt("The Moon Hare", "6-8")
    assert request.shown("Once upon a time.") == "The Moon Hare\n\nOnce upon a time."
    with pytest.raises(ValidationError, match="age_group"):
        StoryRequest(title="The Moon Hare")
    with pytest.raises(ValidationError, match="unicode"):
        StoryRequest(title="The Moon \ud800 Hare", age_group="6-8")
