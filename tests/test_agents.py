import pytest

from conftest import persona_dict
from socialsim.agents.common import clean_utterance, derive_seed
from socialsim.agents.disclosure import DisclosureState
from socialsim.agents.prompts import TEMPLATE_NAMES, Prompts
from socialsim.agents.seeker import Seeker, says_goodbye, supporter_voice
from socialsim.agents.supporter import Supporter
from socialsim.schema import Persona, Strategy, SupporterThought, Turn

S = Strategy


def test_disclosure_rule():
    st = DisclosureState()
    assert st.update(S.OTHERS) == 0
    assert st.update(S.QUESTION) == 1  # asked: context opens
    assert st.update(S.QUESTION) == 1  # 2 points, nothing validated yet
    assert st.update(S.QUESTION) == 1  # 3 points
    assert st.update(S.QUESTION) == 1  # 4 points but no validating turn
    assert st.update(S.REFLECTION) == 2  # validated: core opens


def test_disclosure_premature_advice_costs_trust_and_one_layer_per_turn():
    st = DisclosureState()
    assert st.update(S.SUGGESTION) == 0 and st.points == 0
    st.update(S.RESTATEMENT)
    assert st.layer == 1 and st.points == 2
    st.update(S.SUGGESTION)
    assert st.points == 1
    st.update(S.REFLECTION)
    st.update(S.REFLECTION)
    assert st.layer == 2
    st2 = DisclosureState(points=10, validated=True)
    assert st2.update(S.REFLECTION) == 1  # never skips a layer


@pytest.mark.parametrize(
    "text",
    [
        "I'm so sorry to hear that you are going through this.",
        "It sounds like you are overwhelmed.",
        "How can I help you today?",
        "I'm here for you.",
        "Have you tried talking to your boss?",
        "As an AI, I cannot feel.",
        "Here's a rewritten version of the text.",
        "You are strong and you can get through your exams, your family loves you.",
    ],
)
def test_supporter_voice_detected(text):
    assert supporter_voice(text) is not None


@pytest.mark.parametrize(
    "text",
    [
        "I'm just really stressed about school.",
        "My boss yelled at me again today and I froze.",
        "I don't know, I guess I feel like nobody would notice if I left.",
        "Thanks, that helps. Bye!",
    ],
)
def test_seeker_voice_passes(text):
    assert supporter_voice(text) is None


def test_goodbye_and_cleaning():
    assert says_goodbye("ok thanks, bye for now")
    assert not says_goodbye("I keep standing by the door")
    assert clean_utterance('Seeker: "I feel lost."\nSupporter: why?') == "I feel lost."
    assert clean_utterance("A. B. C. D. E.", max_sentences=2) == "A. B."
    assert derive_seed(1, "a") == derive_seed(1, "a") != derive_seed(1, "b")


def test_templates_render_and_hide_unopened_layers():
    p = Persona.model_validate(persona_dict())
    prompts = Prompts()
    seeker = Seeker(None, p, prompts, seed=1)  # type: ignore[arg-type]
    m0 = seeker.messages([], layer=0, goodbye=False)
    text0 = " ".join(m["content"] for m in m0)
    assert p.disclosure.surface in text0
    assert p.disclosure.context not in text0 and p.disclosure.core not in text0
    hist = [Turn(speaker="seeker", text="hi"), Turn(speaker="supporter", text="Tell me more?")]
    m2 = seeker.messages(hist, layer=2, goodbye=False)
    assert p.disclosure.core in m2[-1]["content"] and "Maya: hi" in m2[-1]["content"]
    assert 'last message to Maya: "Tell me more?"' in m2[-1]["content"]  # set apart, for the seeker to answer
    bye = seeker.messages(hist, layer=2, goodbye=True)[-1]["content"]
    assert "goodbye" in bye and p.disclosure.core not in bye

    sup = Supporter(None, prompts, seed=1)  # type: ignore[arg-type]
    tm = sup.thought_messages(hist)
    assert all(s.value in tm[0]["content"] for s in Strategy)
    th = SupporterThought(
        emotion="anxiety", intensity=4, cause="finals.", need="comfort.", strategy=S.QUESTION, rationale="explore"
    )
    rm = sup.reply_messages(hist, th)
    assert rm[1] == {"role": "user", "content": "hi"} and rm[2]["role"] == "assistant"
    assert rm[-1]["role"] == "system" and "Question" in rm[-1]["content"] and "finals." in rm[-1]["content"]
    # the stable prefix (system prompt + history) does not depend on this turn's thought
    other = th.model_copy(update={"strategy": S.REFLECTION})
    assert sup.reply_messages(hist, other)[:-1] == rm[:-1]


def test_template_override_folder(tmp_path):
    (tmp_path / "seeker_opening.txt").write_text("Hello from an override.")
    assert Prompts(tmp_path).render("seeker_opening.txt") == "Hello from an override."
    assert Prompts(tmp_path).source_digest() != Prompts().source_digest()
    for name in TEMPLATE_NAMES:  # every template the code names ships in the package
        assert Prompts().env.loader.get_source(Prompts().env, name)[0].strip()


def test_missing_template_variable_is_an_error():
    import jinja2

    with pytest.raises(jinja2.UndefinedError):
        Prompts().render("supporter_reply.j2")


def test_narration_check():
    from socialsim.agents.seeker import narrates

    p = Persona.model_validate(persona_dict())
    assert narrates("Maya is a little guarded and says nothing.", p)
    assert narrates("I'm so sorry, Maya.", p)
    assert not narrates("Hi, I'm Maya. School is a lot.", p)
    assert clean_utterance("Maya Lopez: school is hard") == "school is hard"


def test_caseless_patterns_same_matches_for_ascii_and_other_text():
    import pytest

    from socialsim.agents.common import CaselessPatterns

    pats = CaselessPatterns([("sorry", r"\bi'?m sorry\b"), ("you", r"\byou\b")])
    assert pats.first("I'M SORRY, really") == "sorry"  # ASCII: lower-cased once, case-sensitive copies
    assert pats.first("Ça va? I'M SORRY") == "sorry"  # other text: the re.I originals
    assert pats.first("nothing here") is None
    assert pats.count("You and YOU, not yours") == {"sorry": 0, "you": 2}
    assert pats.count("YOU é you") == {"sorry": 0, "you": 2}
    with pytest.raises(ValueError, match="lower case"):
        CaselessPatterns([("bad", r"\bSorry\b")])
