"""Tokenisation and n-gram counts shared by the corpus and response metrics.

Three tokenisers, all lowercasing:

- ``simple``: ``\\w+(?:'\\w+)*`` words and single punctuation marks (no dependencies). Used for
  corpus-level Distinct-n.
- ``nltk``: NLTK's Treebank word tokenizer (what ``nltk.word_tokenize`` runs), applied per sentence
  after splitting at ``.``, ``!`` or ``?`` followed by white space. This is the tokenisation of the
  ESConv authors' metric code (``word_tokenize(text.lower())``), except that their sentence split
  uses NLTK's Punkt model, which we do not download; the two differ only where Punkt knows an
  abbreviation ("mr. smith" → we split off the period). Contractions split the Treebank way:
  "don't" → "do", "n't".
- ``13a``: sacrebleu's default ``13a`` tokenizer (punctuation split off, apostrophes kept).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache

from socialsim.errors import UserError

TOKENIZERS = ("simple", "nltk", "13a")

_SIMPLE = re.compile(r"\w+(?:'\w+)*|[^\w\s]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def simple_tokens(text: str) -> list[str]:
    return _SIMPLE.findall(text.lower())


@lru_cache(maxsize=1)
def _treebank() -> Callable[[str], list[str]]:
    try:
        from nltk.tokenize import word_tokenize
    except ImportError:
        raise UserError("the 'nltk' tokenizer needs the [eval] extra: pip install -e '.[eval]'") from None

    def tok(sentence: str) -> list[str]:
        return word_tokenize(sentence, preserve_line=True)

    return tok


def nltk_tokens(text: str) -> list[str]:
    tok = _treebank()
    out: list[str] = []
    for sentence in _SENTENCE_END.split(text.lower().strip()):
        if sentence:
            out.extend(tok(sentence))
    return out


@lru_cache(maxsize=1)
def _tok13a() -> Callable[[str], str]:
    try:
        from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
    except ImportError:
        raise UserError("the '13a' tokenizer needs the [eval] extra: pip install -e '.[eval]'") from None
    return Tokenizer13a()


def tokens_13a(text: str) -> list[str]:
    return _tok13a()(text.lower()).split()


def tokenizer(name: str) -> Callable[[str], list[str]]:
    """The tokenizer called `name` (one of `TOKENIZERS`)."""
    if name == "simple":
        return simple_tokens
    if name == "nltk":
        return nltk_tokens
    if name == "13a":
        return tokens_13a
    raise UserError(f"unknown tokenizer {name!r}: use one of {', '.join(TOKENIZERS)}")


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(token_lists: Iterable[Sequence[str]], n: int) -> float:
    """Distinct-n (Li et al., 2016): distinct n-grams / all n-grams, pooled over every text.
    n-grams never cross text boundaries. 0.0 when there is no n-gram at all."""
    seen: set[tuple[str, ...]] = set()
    total = 0
    for toks in token_lists:
        grams = ngrams(toks, n)
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


def unigram_f1(hyp: Sequence[str], ref: Sequence[str]) -> float:
    """Token-overlap F1 of one hypothesis against one reference (tokens counted with multiplicity)."""
    common = sum((Counter(hyp) & Counter(ref)).values())
    if common == 0:
        return 0.0
    p = common / len(hyp)
    r = common / len(ref)
    return 2 * p * r / (p + r)
