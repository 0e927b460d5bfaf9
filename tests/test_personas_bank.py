"""The default persona bank: valid, covering, free of near-duplicates; and the stats on it."""

import pytest

from socialsim.personas.bank import default_bank_path, default_personas, load_personas
from socialsim.personas.stats import AGE_BANDS, age_band, bank_stats, coverage, persona_age_band
from socialsim.schema import ESCONV_PROBLEM_TYPES, Persona, ProblemType


@pytest.fixture(scope="module")
def bank():
    return default_personas()


def test_every_line_of_the_default_bank_validates():
    lines = [ln for ln in default_bank_path().read_text(encoding="utf-8").splitlines() if ln.strip()]
    assert len(lines) == 127
    for ln in lines:
        Persona.model_validate_json(ln)  # raises on the first bad line
    assert len({p.id for p in load_personas(default_bank_path())}) == 127


def test_default_bank_coverage(bank):
    c = coverage(bank)
    for pt in ESCONV_PROBLEM_TYPES:
        assert c.problems[pt.value] >= 1, pt
    further = [pt for pt in ProblemType if pt not in ESCONV_PROBLEM_TYPES and c.problems[pt.value]]
    assert len(further) >= 10, further
    for label, _, _ in AGE_BANDS:
        assert c.age_bands[label] >= 1, label
    assert c.missing_problems() == [] and c.missing_age_bands() == []
    assert sum(c.age_bands.values()) == len(bank) == c.n
    assert len(c.genders) >= 3 and c.risks["none"] < len(bank)


def test_age_bands():
    assert [age_band(a) for a in (12, 17, 18, 24, 25, 34, 35, 49, 50, 64, 65, 100)] == [
        "12–17",
        "12–17",
        "18–24",
        "18–24",
        "25–34",
        "25–34",
        "35–49",
        "35–49",
        "50–64",
        "50–64",
        "65+",
        "65+",
    ]


def test_placeholder_ages_count_as_unknown(bank):
    p = bank[0].model_copy(update={"life_stage": "unknown (the age field is a placeholder: 30)"})
    assert persona_age_band(bank[0]) != "unknown"
    assert persona_age_band(p) == "unknown"


@pytest.fixture(scope="module")
def bank_diversity(bank):
    pytest.importorskip("sentence_transformers", reason="embeddings need the [eval] extra")
    return bank_stats(bank, "default").diversity


def test_default_bank_has_no_near_duplicates(bank_diversity):
    """Measured with the real all-MiniLM-L6-v2 model at the documented threshold."""
    from socialsim.embeddings import NEAR_DUPLICATE_THRESHOLD

    d = bank_diversity
    assert d.threshold == NEAR_DUPLICATE_THRESHOLD
    assert d.near_duplicates == []
    assert d.max_similarity < NEAR_DUPLICATE_THRESHOLD
    assert 0.70 < d.mean_distance < 0.85, d.mean_distance  # measured 0.773


def test_a_paraphrased_persona_is_caught_as_near_duplicate(bank):
    pytest.importorskip("sentence_transformers", reason="embeddings need the [eval] extra")
    from socialsim.personas.stats import diversity

    p = bank[0]
    twin = p.model_copy(
        update={
            "id": "twin",
            "situation": p.situation.replace("Honestly most days", "Most days honestly"),
            "disclosure": p.disclosure.model_copy(update={"surface": "I guess I have been kind of flat lately."}),
        }
    )
    d = diversity([p, bank[1], twin])
    assert [(a, b) for a, b, _ in d.near_duplicates] == [(p.id, "twin")]


def test_stats_plot_is_a_png(bank, tmp_path):
    pytest.importorskip("matplotlib")
    from socialsim.personas.stats import plot_stats

    out = plot_stats(bank_stats(bank, "default", with_embeddings=False), tmp_path / "bank.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    assert [p.name for p in tmp_path.iterdir()] == ["bank.png"]
