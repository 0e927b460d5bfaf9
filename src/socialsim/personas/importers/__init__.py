"""Import persona banks from ESConv, ESC-Eval-style role cards, SocialSim's user profiles, CSV and
JSONL: one module per source format (`esconv`, `rolecards`, `socialsim`, `tabular`), the shared
pieces in `common` and the fill rules in `rules`.

Every importer reads the whole source, validates each record as a `Persona` and stops at the
first bad record with a one-line `UserError` naming file, line (or record) and field; with
``skip_invalid=True`` bad records are left out instead and each is listed in
`ImportResult.skipped` (never silently dropped).

What the sources lack is filled by fixed, documented rules, and every fill is counted in
`ImportResult.notes` so the CLI can say what was filled and how:

* **Unknown demographics.** A name, gender or occupation the source does not give is written as
  ``"unknown"`` (`UNKNOWN`). The schema requires an integer age, so a missing or vague age is
  written as a placeholder (`DEFAULT_PLACEHOLDER_AGE`, or a band-typical age for a word such as
  "middle-aged") and ``life_stage`` records it, always containing `AGE_PLACEHOLDER_MARK`;
  `socialsim.personas.stats` counts such personas in the age band "unknown", never in the band
  of the placeholder.
* **ESConv** gives the seeker's situation, problem type, emotion, initial intensity
  (``survey_score.seeker.initial_emotion_intensity``) and experience type: kept as given. Its
  disclosure layers come from the seeker's own words in the dialogue: consecutive
  seeker utterances are merged into messages, greetings and thanks-only messages are dropped
  (`is_pleasantry`), and the rest is cut into three consecutive, near-equal parts: first →
  surface, middle → context, last → core (each at most `LAYER_MAX_CHARS`, cut at a word). With
  fewer than three messages, the missing later layers repeat the seeker's own ``situation`` text.
* **Role cards** give age, gender, occupation and a third-person problem text (kept as the
  situation, unchanged); 'female'/'male' become the bank's 'woman'/'man'. Problem type and
  emotion come from explicit ``Problem type:`` / ``Emotion:`` lines, else from the keyword rules
  below (`infer_problem_type`, `infer_emotion`), else from a fallback the caller names
  explicitly, else the card is an error. A missing ``Intensity:`` becomes the midpoint 3.
  Disclosure layers come from ``Surface:``/``Context:``/``Core:`` lines, else from the problem
  text cut into three parts by sentence (then clause).
* **CSV and JSONL** carry persona fields themselves; nothing is filled in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from socialsim.errors import UserError
from socialsim.personas.importers.common import (
    AGE_PLACEHOLDER_MARK,
    DEFAULT_CARD_INTENSITY,
    DEFAULT_PLACEHOLDER_AGE,
    LAYER_MAX_CHARS,
    UNKNOWN,
    ImportResult,
    check_fallbacks,
    cut_at_word,
    read_json_list,
    slug,
    three_parts,
    write_personas,
)
from socialsim.personas.importers.esconv import (
    esconv_disclosure,
    import_esconv,
    is_pleasantry,
    seeker_messages,
)
from socialsim.personas.importers.rolecards import (
    import_rolecards,
)
from socialsim.personas.importers.rules import (
    AGE_WORDS,
    EMOTION_KEYWORDS,
    PROBLEM_KEYWORDS,
    card_age,
    card_disclosure,
    infer_emotion,
    infer_problem_type,
)
from socialsim.personas.importers.tabular import (
    CSV_COLUMNS,
    LIST_FIELDS,
    import_csv,
    import_jsonl,
)

ImportKind = Literal["esconv", "rolecards", "socialsim", "csv", "jsonl"]
IMPORT_KINDS: tuple[str, ...] = ("esconv", "rolecards", "socialsim", "csv", "jsonl")


def import_personas(
    kind: str,
    src: str | Path,
    *,
    placeholder_age: int = DEFAULT_PLACEHOLDER_AGE,
    id_prefix: str | None = None,
    fallback_problem_type: str | None = None,
    fallback_emotion: str | None = None,
    skip_invalid: bool = False,
    core_llm: Any = None,
) -> ImportResult:
    """Import from `src` with the importer named by `kind` (one of `IMPORT_KINDS`); with `core_llm`
    (an `LLM`), the core layers are then rewritten by that model (`socialsim.personas.core_llm`)."""
    result = _import(kind, src, placeholder_age, id_prefix, fallback_problem_type, fallback_emotion, skip_invalid)
    if core_llm is not None:
        from socialsim.personas.core_llm import llm_cores

        result.personas, notes = llm_cores(result.personas, core_llm)
        result.notes.update(notes)
    return result


def _import(
    kind: str,
    src: str | Path,
    placeholder_age: int,
    id_prefix: str | None,
    fallback_problem_type: str | None,
    fallback_emotion: str | None,
    skip_invalid: bool,
) -> ImportResult:
    if not 12 <= placeholder_age <= 100:
        raise UserError(f"option --placeholder-age: must be 12 to 100 (got {placeholder_age})")
    if kind == "esconv":
        return import_esconv(src, placeholder_age=placeholder_age, id_prefix=id_prefix, skip_invalid=skip_invalid)
    if kind == "rolecards":
        return import_rolecards(
            src,
            placeholder_age=placeholder_age,
            id_prefix=id_prefix,
            fallback_problem_type=fallback_problem_type,
            fallback_emotion=fallback_emotion,
            skip_invalid=skip_invalid,
        )
    if kind == "socialsim":
        from socialsim.personas.importers.socialsim import import_socialsim

        return import_socialsim(
            src,
            placeholder_age=placeholder_age,
            id_prefix=id_prefix,
            fallback_problem_type=fallback_problem_type,
            fallback_emotion=fallback_emotion,
            skip_invalid=skip_invalid,
        )
    if kind == "csv":
        return import_csv(src, skip_invalid=skip_invalid)
    if kind == "jsonl":
        return import_jsonl(src, skip_invalid=skip_invalid)
    raise UserError(f"option --from: unknown source format {kind!r}; use one of {', '.join(IMPORT_KINDS)}")


__all__ = [
    "AGE_PLACEHOLDER_MARK",
    "AGE_WORDS",
    "CSV_COLUMNS",
    "DEFAULT_CARD_INTENSITY",
    "DEFAULT_PLACEHOLDER_AGE",
    "EMOTION_KEYWORDS",
    "IMPORT_KINDS",
    "LAYER_MAX_CHARS",
    "LIST_FIELDS",
    "PROBLEM_KEYWORDS",
    "UNKNOWN",
    "ImportResult",
    "card_age",
    "card_disclosure",
    "check_fallbacks",
    "cut_at_word",
    "esconv_disclosure",
    "import_csv",
    "import_esconv",
    "import_jsonl",
    "import_personas",
    "import_rolecards",
    "infer_emotion",
    "infer_problem_type",
    "is_pleasantry",
    "read_json_list",
    "seeker_messages",
    "slug",
    "three_parts",
    "write_personas",
]
