"""Plain mode of the supporter pipeline (a trained chatbot that writes '[Strategy] reply'): the
prefix is read as the strategy and never shown, however the stream splits it. The end-to-end run on
a really trained model is in test_sft_train.py."""

import pytest

from socialsim.safety import load_rules
from socialsim.schema import Strategy
from socialsim.serve.pipeline import _ReplyStreamer

REPLY = "It sounds like the exams are weighing on you. What worries you most about them?"


def _stream(pieces):
    s = _ReplyStreamer(load_rules().screen_output, strip_prefix=True)
    shown = "".join(s.feed(p) for p in pieces) + s.finish()
    return shown, s


@pytest.mark.parametrize(
    ("raw", "strategy"),
    [
        ("[Reflection of feelings] " + REPLY, Strategy.REFLECTION),
        ("[Providing Suggestions] " + REPLY, Strategy.SUGGESTION),
        ('<thought>{"emotion": "anxiety", "cause": "exams"}</thought> [Question] ' + REPLY, Strategy.QUESTION),
        (REPLY, None),
    ],
)
@pytest.mark.parametrize("size", [1, 3, 7, 1000])
def test_prefix_never_shown_whatever_the_chunking(raw, strategy, size):
    pieces = [raw[i : i + size] for i in range(0, len(raw), size)]
    shown, s = _stream(pieces)
    assert shown.strip() == REPLY
    assert s.strategy is strategy


def test_without_strip_prefix_the_tag_is_text():
    s = _ReplyStreamer(load_rules().screen_output)
    shown = s.feed("[Question] " + REPLY) + s.finish()
    assert shown.startswith("[Question]") and s.strategy is None
