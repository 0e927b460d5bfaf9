"""Response metrics: hand-computed values, and agreement with sacrebleu, NLTK and rouge-score themselves."""

import json
import math

import pytest

from conftest import ESCONV_DIR
from socialsim.corpus.esconv_tsv import read_tsv_examples
from socialsim.errors import UserError
from socialsim.evaluate.response_metrics import align, corpus_bleu, read_hypotheses, response_metrics, rouge_l
from socialsim.evaluate.text import nltk_tokens, tokens_13a
from socialsim.schema import Strategy

for _mod in ("sacrebleu", "rouge_score", "nltk"):  # the [eval] extra
    pytest.importorskip(_mod)

DEV_TSV = ESCONV_DIR / "devWithStrategy_short.tsv"
HYP = "The cat sat on the mat"
REF = "the cat is on the mat"


def test_bleu_by_hand():
    # unigrams: 5/6 match; bigrams: the-cat, on-the, the-mat = 3/5; trigrams: on-the-mat = 1/4;
    # 4-grams: 0/3, exp smoothing makes it 1/(2*3); equal lengths, so no brevity penalty
    m = response_metrics([HYP], [REF], tokenize="simple")
    assert m.bleu["1"] == pytest.approx(100 * 5 / 6)
    assert m.bleu["2"] == pytest.approx(100 * math.sqrt(5 / 6 * 3 / 5))
    assert m.bleu["3"] == pytest.approx(50.0)
    assert m.bleu["4"] == pytest.approx(100 * (5 / 6 * 3 / 5 * 1 / 4 * 1 / 6) ** 0.25)
    # LCS "the cat on the mat" = 5 of 6 both ways
    assert m.rouge_l == pytest.approx(100 * 5 / 6)
    assert m.unigram_f1 == pytest.approx(100 * 5 / 6)
    # hypothesis: the cat sat on the mat -> 5 distinct of 6 unigrams, 5 distinct of 5 bigrams
    assert m.distinct == {"1": pytest.approx(100 * 5 / 6), "2": pytest.approx(100.0)}
    assert m.hypothesis_tokens == 6 and m.reference_tokens == 6


def test_brevity_penalty_by_hand():
    m = response_metrics(["the cat"], ["the cat sat on the mat"], tokenize="simple")
    assert m.bleu["1"] == pytest.approx(100 * math.exp(1 - 6 / 2))
    assert m.bleu["2"] == pytest.approx(100 * math.exp(1 - 6 / 2))


def test_perfect_and_disjoint():
    m = response_metrics(["I hear you.", "That is hard."], ["i hear you .", "that is hard ."])
    assert all(v == pytest.approx(100.0) for v in m.bleu.values())
    assert m.rouge_l == pytest.approx(100.0) and m.unigram_f1 == pytest.approx(100.0)
    z = response_metrics(["alpha beta gamma delta"], ["one two three four"])
    assert z.bleu["1"] == 0.0 and z.rouge_l == 0.0 and z.unigram_f1 == 0.0


CORPUS_H = [
    "I understand how you feel, it must be hard for you right now.",
    "Have you tried talking to your manager about the workload?",
    "That sounds really stressful. What happened after the meeting?",
    "Maybe taking a short walk every evening could help you sleep.",
]
CORPUS_R = [
    "I can understand how you feel. It must be really hard right now.",
    "Did you talk to your boss about it?",
    "That sounds stressful! What did you do after the meeting?",
    "Going for a walk in the evening might help you relax and sleep.",
]


def test_bleu_matches_sacrebleu_itself():
    sacrebleu = pytest.importorskip("sacrebleu")
    m = response_metrics(CORPUS_H, CORPUS_R, tokenize="13a")
    for n in (1, 2, 3, 4):
        ref = sacrebleu.metrics.BLEU(lowercase=True, max_ngram_order=n).corpus_score(CORPUS_H, [CORPUS_R]).score
        assert m.bleu[str(n)] == pytest.approx(ref, abs=1e-9)
    assert m.bleu["4"] == pytest.approx(sacrebleu.corpus_bleu(CORPUS_H, [CORPUS_R], lowercase=True).score)


def test_bleu_matches_nltk_corpus_bleu_method3():
    nltk_bleu = pytest.importorskip("nltk.translate.bleu_score")
    hyps = [nltk_tokens(h) for h in CORPUS_H]
    refs = [nltk_tokens(r) for r in CORPUS_R]
    for n in (1, 2, 3, 4):
        weights = [1 / n] * n + [0.0] * (4 - n)
        ref = 100 * nltk_bleu.corpus_bleu(
            [[r] for r in refs], hyps, weights=weights, smoothing_function=nltk_bleu.SmoothingFunction().method3
        )
        assert corpus_bleu(hyps, refs, n) == pytest.approx(ref, abs=1e-9)
        assert response_metrics(CORPUS_H, CORPUS_R).bleu[str(n)] == pytest.approx(ref, abs=1e-9)


def test_rouge_l_matches_rouge_score_itself():
    rs = pytest.importorskip("rouge_score.rouge_scorer")
    # plain lowercase words: rouge-score's own tokenizer and ours agree, so the numbers must too
    hyps = ["the cat sat on the mat", "i think you should rest", "what happened then"]
    refs = ["the cat is on the mat", "you should get some rest", "what happened next"]
    scorer = rs.RougeScorer(["rougeL"])
    expected = 100 * sum(scorer.score(r, h)["rougeL"].fmeasure for h, r in zip(hyps, refs, strict=True)) / 3
    assert response_metrics(hyps, refs, tokenize="simple").rouge_l == pytest.approx(expected)
    assert rouge_l([h.split() for h in hyps], [r.split() for r in refs]) == pytest.approx(expected)


def test_13a_tokens_and_tag_stripping():
    assert tokens_13a("Hello, World!") == ["hello", ",", "world", "!"]
    m = response_metrics(["[Questions] How are you?"], ["[Question] how are you?"])
    assert m.bleu["4"] == pytest.approx(100.0)


def test_hypotheses_files_and_alignment(tmp_path):
    jl = tmp_path / "h.jsonl"
    jl.write_text(
        json.dumps({"response": "[Questions] How are you?", "reference": "How are you?"})
        + "\n"
        + json.dumps({"text": "Fine.", "strategy": "Other", "reference": "ok"})
        + "\n"
    )
    hs = read_hypotheses(jl)
    assert [h.strategy for h in hs] == [Strategy.QUESTION, Strategy.OTHERS]
    h, r, pred, _ = align(hs, None, path=jl)
    assert r == ["How are you?", "ok"] and pred == [Strategy.QUESTION, Strategy.OTHERS]
    txt = tmp_path / "h.txt"
    txt.write_text("one\n\nthree\n")
    assert [h.response for h in read_hypotheses(txt)] == ["one", "", "three"]
    with pytest.raises(UserError, match="h.txt:1: field 'reference'"):
        align(read_hypotheses(txt)[:2], None, path=txt)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"response": "x"}\n{"answer": "y"}\n')
    with pytest.raises(UserError, match=r"bad.jsonl:2: field 'response'"):
        read_hypotheses(bad)


@pytest.mark.skipif(not DEV_TSV.is_file(), reason="no ESConv material")
def test_references_from_the_dev_tsv(tmp_path):
    ex = read_tsv_examples(DEV_TSV)
    # the references themselves, with their strategies: everything is perfect
    perfect = tmp_path / "perfect.jsonl"
    perfect.write_text("".join(json.dumps({"response": e.reference, "strategy": e.strategy.value}) + "\n" for e in ex))
    h, r, pred, gold = align(read_hypotheses(perfect), ex, path=perfect)
    m = response_metrics(h, r, predicted_strategies=pred, reference_strategies=gold)
    assert m.n == 2985
    assert all(v == pytest.approx(100.0) for v in m.bleu.values())
    assert m.rouge_l == pytest.approx(100.0) and m.unigram_f1 == pytest.approx(100.0)
    assert m.strategy_accuracy == pytest.approx(100.0)
    # a few responses addressed by TSV line
    some = tmp_path / "some.jsonl"
    some.write_text(json.dumps({"response": "How has the pandemic affected you?", "line": 2}) + "\n")
    h, r, _, gold = align(read_hypotheses(some), ex, path=some)
    assert r == ["How has the pandemic affected your mental health?"] and gold == [Strategy.QUESTION]
    few = tmp_path / "few.txt"
    few.write_text("a\nb\n")
    with pytest.raises(UserError, match="2 hypotheses but 2985 reference examples"):
        align(read_hypotheses(few), ex, path=few)
    far = tmp_path / "far.jsonl"
    far.write_text(json.dumps({"response": "x", "line": 99999}) + "\n")
    with pytest.raises(UserError, match="far.jsonl:1: field 'line'"):
        align(read_hypotheses(far), ex, path=far)
