"""A text block's body (soc.store.text_words): the compiled loop against the Python expression it stands for."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from soc.store.text_words import block_words


def _reference(messages: str | None) -> str | None:
    return " ".join(dict.fromkeys(messages.lower().split())) if messages else None


_ASCII = st.text(alphabet=st.characters(max_codepoint=127), max_size=300)  # every ASCII character, separators too
_WORDS = st.lists(st.sampled_from(["Failed", "failed", "FAILED", "root", "Root", "10.0.0.1", "port", "a", "A", "Z[",
                                   "@`", "x=Y", " ", "\t", "\n", "\r\n", "\x0b", "\x0c", "\x1c", "\x1f", "\x1b",
                                   "\x00", "\x7f"]), max_size=80).map("".join)


@settings(max_examples=600, deadline=None)
@given(st.one_of(_ASCII, _WORDS, st.text(max_size=120)))
def test_a_blocks_words_are_the_python_expressions(messages: str) -> None:
    assert block_words(messages) == _reference(messages)


def test_a_large_block_keeps_each_word_once_in_first_seen_order() -> None:
    rng = random.Random(7)
    words = [f"W{rng.randrange(60_000)}x" for _ in range(120_000)]  # many repeats, a table of 2^17 slots and more
    messages = "\n".join(" ".join(words[i:i + 12]) for i in range(0, len(words), 12))
    body = block_words(messages)
    assert body == _reference(messages)
    assert body is not None and len(body.split()) == len({w.lower() for w in words})


def test_no_text_no_body() -> None:
    assert block_words(None) is None and block_words("") is None
    assert block_words(" \n\t\x1c ") == ""  # only separators: an empty body, as the expression gives
