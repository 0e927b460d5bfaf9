import pytest

from socialsim.errors import StructuredOutputError
from socialsim.llm.base import ChatRequest, Completion
from socialsim.llm.structured import generate_structured, grammar_schema, parse_model, repair_json
from socialsim.schema import Strategy, SupporterThought

GOOD = (
    '{"emotion": "sad", "intensity": 3, "cause": "a breakup", "need": "comfort", '
    '"strategy": "Reflection of feelings", "rationale": "name it"}'
)


def test_grammar_schema_is_decoder_friendly():
    s = grammar_schema(SupporterThought)
    props = s["properties"]
    assert props["intensity"] == {"enum": [1, 2, 3, 4, 5]}
    assert props["strategy"]["enum"] == [x.value for x in Strategy]
    assert s["required"] == list(props)
    assert all("maxLength" in v for k, v in props.items() if v.get("type") == "string" and "enum" not in v)
    assert "$defs" not in s and "$ref" not in str(s)


@pytest.mark.parametrize(
    "text",
    [
        GOOD,
        "```json\n" + GOOD + "\n```",
        "Sure! Here is my analysis: " + GOOD + " Hope it helps.",
        GOOD.replace("a breakup", "a\nbreakup"),
        GOOD[:-1] + ",}",
        GOOD[:-1],
    ],
)
def test_repair_json_recovers(text):
    assert repair_json(text)["emotion"] == "sad"


def test_parse_model_reports_field():
    with pytest.raises(ValueError, match="field 'intensity'"):
        parse_model(SupporterThought, GOOD.replace('"intensity": 3', '"intensity": 30'))
    with pytest.raises(ValueError, match="no JSON object"):
        parse_model(SupporterThought, "I think they are sad.")


class Scripted:
    """Injects a fixed sequence of raw outputs (a fault-injection double, not a proof of work)."""

    def __init__(self, outputs):
        self.outputs = list(outputs)
        self.requests = []

    async def complete(self, req):
        self.requests.append(req)
        return Completion(text=self.outputs.pop(0))


async def _gen(llm, attempts=3):
    req = ChatRequest.of([{"role": "user", "content": "x"}], seed=5)
    return await generate_structured(llm, req, SupporterThought, attempts=attempts)


def test_generate_structured_retries_with_new_seed():
    import asyncio

    llm = Scripted(["not json", '{"emotion": "sad"}', GOOD])
    obj, comps = asyncio.run(_gen(llm))
    assert obj.strategy is Strategy.REFLECTION
    assert len(comps) == 3
    assert len({r.seed for r in llm.requests}) == 3
    assert llm.requests[0].json_schema["title"] == "SupporterThought"


def test_generate_structured_never_returns_none():
    import asyncio

    llm = Scripted(["nope", "still nope"])
    with pytest.raises(StructuredOutputError, match="unparseable after 2 attempts") as e:
        asyncio.run(_gen(llm, attempts=2))
    assert e.value.raw == "still nope"
