"""Corpus metrics against values computed by hand on a two-dialogue corpus."""

import math

import pytest

from conftest import ESCONV_DIR, persona_dict
from socialsim.evaluate.metrics import (
    STRATEGIES,
    compare,
    corpus_metrics,
    distribution,
    js_divergence,
    table_rows,
    transition_matrix,
)
from socialsim.evaluate.readers import Corpus, load_corpus, meta_from_persona
from socialsim.evaluate.text import distinct_n, nltk_tokens, simple_tokens, unigram_f1
from socialsim.schema import Dialogue, Persona, Strategy, Turn


def dlg(did, turns, *, problem="academic pressure", **kw):
    """A dialogue from (speaker, text, strategy or None, layer or None) tuples."""
    p = Persona.model_validate(persona_dict(id=f"p-{did}", problem_type=problem))
    ts = [Turn(speaker=s, text=text, strategy=st, disclosure_layer=layer) for s, text, st, layer in turns]
    return Dialogue(id=did, persona_id=p.id, persona=p, backend="local", model="m", seed=0, turns=ts, **kw)


def corpus_of(dialogues, name="tiny"):
    return Corpus(
        name=name,
        path=ESCONV_DIR,
        format="jsonl",
        dialogues=list(dialogues),
        meta=[meta_from_persona(d) for d in dialogues],
    )


def tiny():
    d1 = dlg(
        "d1",
        [
            ("seeker", "I feel sad today", None, 0),
            ("supporter", "Why do you feel sad?", Strategy.QUESTION, None),
            ("seeker", "Work is hard", None, 1),
            ("supporter", "That sounds hard.", Strategy.REFLECTION, None),
            ("supporter", "Take a break.", Strategy.SUGGESTION, None),
        ],
        end_reason="seeker_goodbye",
    )
    d2 = dlg(
        "d2",
        [("seeker", "Hello", None, 0), ("supporter", "Hi there", Strategy.OTHERS, None)],
        problem="job crisis",
        end_reason="failure",
        status="failed",
        failure_reason="x",
    )
    return corpus_of([d1, d2])


def test_tiny_corpus_by_hand():
    m = corpus_metrics(tiny(), diversity="none")
    assert m.dialogues == 2 and m.ok == 1 and m.failed == 1 and m.failure_rate == 0.5
    assert m.end_reasons == {"seeker_goodbye": 1, "failure": 1}
    assert m.utterances_per_dialogue["mean"] == 3.5
    assert (m.utterances_per_dialogue["min"], m.utterances_per_dialogue["max"]) == (2, 5)
    assert m.supporter_turns_per_dialogue["mean"] == 2.0
    # words: seeker 4, 3, 1; supporter 5, 3, 3, 2
    assert m.words_per_utterance["seeker"]["mean"] == pytest.approx(8 / 3)
    assert m.words_per_utterance["supporter"]["mean"] == pytest.approx(13 / 4)
    assert m.lengths["supporter_words"] == [5, 3, 3, 2]
    # supporter tokens: why do you feel sad ? | that sounds hard . | take a break . | hi there
    # 16 unigrams, 15 distinct ('.' twice); 12 bigrams, all distinct; 8 trigrams, all distinct
    assert m.distinct["supporter"] == {"1": 15 / 16, "2": 1.0, "3": 1.0}
    # seeker tokens: i feel sad today | work is hard | hello: 8 distinct unigrams, 5 bigrams
    assert m.distinct["seeker"] == {"1": 1.0, "2": 1.0, "3": 1.0}
    assert m.strategy_counts == {
        "Question": 1,
        "Restatement or Paraphrasing": 0,
        "Reflection of feelings": 1,
        "Self-disclosure": 0,
        "Affirmation and Reassurance": 0,
        "Providing Suggestions": 1,
        "Information": 0,
        "Others": 1,
    }
    assert m.strategy_distribution["Question"] == 0.25 and sum(m.strategy_distribution.values()) == 1
    q, r, s = (STRATEGIES.index(x) for x in ("Question", "Reflection of feelings", "Providing Suggestions"))
    expected = [[0] * 8 for _ in range(8)]
    expected[q][r] = 1
    expected[r][s] = 1
    assert m.transitions == expected
    assert m.disclosure == {"surface": 1, "context": 1, "core": 0}
    assert m.problem_types == {"academic pressure": 1, "job crisis": 1}
    assert m.problem_types_covered == 2 and m.esconv_problem_types_covered == 2
    assert m.strategies_per_dialogue["mean"] == 2.0
    assert m.embedding_diversity is None and m.self_bleu is None and m.strategy_jsd is None


def test_jsd_by_hand_and_against_reference():
    # P = 1/4 on four strategies, Q = all Question: M = (5/8, 1/8, 1/8, 1/8)
    kl_p = 0.25 * math.log2(0.25 / 0.625) + 0.75 * math.log2(0.25 / 0.125)
    kl_q = math.log2(1 / 0.625)
    by_hand = 0.5 * (kl_p + kl_q)
    assert by_hand == pytest.approx(0.548795, abs=1e-6)
    ref = corpus_of(
        [dlg("r", [("seeker", "hi", None, None), ("supporter", "How are you?", Strategy.QUESTION, None)])], "ref"
    )
    ms = compare([tiny(), ref], reference_index=1, diversity="none")
    assert ms[0].strategy_jsd == pytest.approx(by_hand)
    assert ms[1].strategy_jsd == 0.0 and ms[0].reference == "ref"
    assert js_divergence([1, 0], [0, 1]) == pytest.approx(1.0)
    assert js_divergence([0.5, 0.5], [1, 0]) == pytest.approx(0.311278, abs=1e-6)
    assert js_divergence({"a": 2, "b": 2}, {"a": 1, "b": 1}) == 0.0
    with pytest.raises(ValueError):
        js_divergence([0, 0], [1, 0])


def test_jsd_matches_scipy():
    spatial = pytest.importorskip("scipy.spatial")
    p = [0.1, 0.4, 0.0, 0.5]
    q = [0.3, 0.3, 0.2, 0.2]
    assert js_divergence(p, q) == pytest.approx(spatial.distance.jensenshannon(p, q, base=2) ** 2)


def test_distinct_f1_and_tokenisers_by_hand():
    pytest.importorskip("nltk")
    assert distinct_n([["a", "b", "a"], ["a", "b", "c"]], 1) == 0.5
    assert distinct_n([["a", "b", "a"], ["a", "b", "c"]], 2) == 0.75  # ab ba | ab bc
    assert distinct_n([["a"]], 2) == 0.0
    assert simple_tokens("I don't KNOW, ok?") == ["i", "don't", "know", ",", "ok", "?"]
    assert nltk_tokens("I don't know. What's up?") == ["i", "do", "n't", "know", ".", "what", "'s", "up", "?"]
    assert unigram_f1("the cat sat on the mat".split(), "the cat is on the mat".split()) == pytest.approx(5 / 6)
    assert unigram_f1(["a"], ["b"]) == 0.0
    assert distribution({"Question": 3, "Others": 1})["Question"] == 0.75


def test_transition_matrix_skips_seeker_turns():
    d = dlg(
        "x",
        [
            ("supporter", "a", Strategy.QUESTION, None),
            ("seeker", "b", None, None),
            ("supporter", "c", Strategy.QUESTION, None),
            ("supporter", "d", None, None),
            ("supporter", "e", Strategy.OTHERS, None),
        ],
    )
    m = transition_matrix([d])
    q, o = STRATEGIES.index("Question"), STRATEGIES.index("Others")
    assert m[q][q] == 1 and m[q][o] == 1 and sum(map(sum, m)) == 2


def test_self_bleu_and_embedding_diversity():
    pytest.importorskip("sacrebleu")
    pytest.importorskip("sentence_transformers")
    same = corpus_of([tiny().dialogues[0], tiny().dialogues[0].model_copy(update={"id": "copy"})])
    m = corpus_metrics(same, diversity="both")
    assert m.self_bleu == pytest.approx(100.0)
    assert m.embedding_diversity == pytest.approx(0.0, abs=1e-5)
    other = dlg("o", [("seeker", "My landlord raised the rent again", None, 0)])
    m2 = corpus_metrics(corpus_of([tiny().dialogues[0], other]), diversity="both")
    assert 0.2 < m2.embedding_diversity < 1.5
    assert m2.self_bleu < 20
    assert m2.diversity_sample == 2


def test_table_rows_cover_every_metric():
    ms = compare([tiny(), tiny()], reference_index=1, diversity="none")
    labels = [label for label, _ in table_rows(ms)]
    for needle in (
        "dialogues",
        "failed",
        "end reasons",
        "utterances / dialogue",
        "words / seeker utterance",
        "words / supporter utterance",
        "Distinct-1/2/3 supporter",
        "embedding diversity ↑",
        "self-BLEU-4 ↓",
        "strategy JSD vs tiny",
        "top transition",
        "disclosure depth reached",
        "problem types covered",
    ):
        assert needle in labels, needle
    cells = dict(table_rows(ms))
    assert cells["failed"] == ["1 (50%)", "1 (50%)"]
    assert cells["disclosure depth reached"][0] == "surface 50% · context 50% · core 0%"


@pytest.mark.skipif(not (ESCONV_DIR / "FailedESConv.json").is_file(), reason="no ESConv material")
def test_failed_esconv_metrics():
    m = corpus_metrics(load_corpus(ESCONV_DIR / "FailedESConv.json"), diversity="none")
    assert m.dialogues == 196 and m.failed == 0
    assert sum(m.strategy_counts.values()) == 2377
    assert m.strategy_counts["Question"] == 528
    assert m.disclosure is None and m.problem_types_covered == 6
