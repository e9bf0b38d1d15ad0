"""A prompt the model's tokenizer cannot encode is refused with a message that helps: the word it
cannot encode, and a few tokens it does know (``induction-2l`` knows only 64 syllables)."""

from __future__ import annotations

import pytest

import kit


@pytest.fixture(scope="module")
def induction():
    return kit.load("induction-2l", device="cpu")


def test_english_prompt_names_the_word_and_shows_known_syllables(induction):
    with pytest.raises(ValueError) as err:
        induction.trace("The capital of Fusuvaria is")
    msg = str(err.value)
    assert "cannot encode 'The'" in msg
    assert "64 tokens" in msg and "'ba'" in msg
    assert "<|bos|>" not in msg  # special tokens are not offered as text to type
    known = msg.split("for example ")[1].split(":")[0].replace("'", "").split(", ")
    assert len(known) >= 5
    assert induction.trace(" ".join(known), capture=[]).logits.shape[1] == len(known) + 1  # they do encode


def test_in_a_batch_the_prompt_and_word_are_named(induction):
    with pytest.raises(ValueError, match=r"cannot encode 'zz' in prompt 1"):
        induction.trace(["ba ke", "ba zz po"])


def test_a_prompt_of_its_syllables_still_traces(induction):
    tr = induction.trace("ba ke po ba ke", capture=[])
    assert tr.tokens == [["<|bos|>", "ba", "ke", "po", "ba", "ke"]]


def test_a_byte_level_tokenizer_encodes_anything():
    model = kit.load("facts-4l", device="cpu")
    assert model.trace("Zzyzx qwv!", capture=[]).logits.shape[1] > 1
