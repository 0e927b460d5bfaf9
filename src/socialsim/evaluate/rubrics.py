"""Judge rubrics as pydantic models: the Field descriptions below ARE the rubric text the judge sees.

Each dimension is a model with a short ``reason`` (written first, so the judge explains before it
scores) and a ``score`` from 1 to 5 whose description holds the question and the anchors. A rubric
set is a model with one field per dimension; the judge's JSON answer is parsed straight into it.

- ``esconv``: the human-evaluation dimensions of ESConv (Liu et al., ACL 2021): fluency,
  identification, comforting, suggestion, overall. ESConv asked them as pairwise preferences;
  here each is also given 1–5 anchors for pointwise scoring.
- ``esc-eval``: the dimensions of ESC-Eval (Zhao et al., 2024): fluency, diversity (expression),
  empathy, suggestion effectiveness (information), humanoid, emotional knowledge (skill), overall
  preference; rescaled to 1–5.

For pairwise comparison, `pairwise_model` turns a rubric set into a model whose dimensions hold a
``winner`` ("A", "B" or "tie") described by the same rubric text.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

REASON = "One short sentence that points to what the supporter said."


class DimensionScore(BaseModel):
    """A 1–5 score with a short reason (base of every dimension)."""

    model_config = ConfigDict(extra="ignore")
    reason: str = Field(description=REASON)
    score: int = Field(ge=1, le=5, description="1 (very poor) to 5 (excellent).")


# -- ESConv (Liu et al., 2021) ------------------------------------------------------------------


class ESConvFluency(DimensionScore):
    score: int = Field(
        ge=1,
        le=5,
        description="Fluency: are the supporter's responses fluent and easy to understand? "
        "1 = often broken, garbled or hard to follow; 3 = understandable but awkward or repetitive in "
        "places; 5 = natural, fluent and clear throughout.",
    )


class Identification(DimensionScore):
    score: int = Field(
        ge=1,
        le=5,
        description="Identification: does the supporter explore the seeker's situation in depth and help "
        "identify the seeker's problem? 1 = no exploration, the problem stays unclear; 3 = some relevant "
        "questions but shallow; 5 = careful exploration that brings out the underlying problem.",
    )


class Comforting(DimensionScore):
    score: int = Field(
        ge=1,
        le=5,
        description="Comforting: how skilful is the supporter at comforting the seeker? 1 = cold, "
        "dismissive or hurtful; 3 = some comfort, but generic; 5 = warm, specific comfort that clearly "
        "eases the seeker's distress.",
    )


class ESConvSuggestion(DimensionScore):
    score: int = Field(
        ge=1,
        le=5,
        description="Suggestion: how helpful are the supporter's suggestions for the seeker's problem? "
        "1 = none when they were needed, or unhelpful or harmful ones; 3 = generic suggestions loosely "
        "tied to the problem; 5 = concrete, feasible suggestions fitted to the seeker's situation and "
        "offered at the right moment.",
    )


class ESConvOverall(DimensionScore):
    score: int = Field(
        ge=1,
        le=5,
        description="Overall: how good is the supporter's emotional support as a whole, as the seeker "
        "would feel it? 1 = poor, the seeker would not want it; 3 = acceptable; 5 = excellent, the "
        "seeker would gladly talk to this supporter again.",
    )


class ESConvRubric(BaseModel):
    """ESConv's human-evaluation dimensions (Liu et al., ACL 2021)."""

    model_config = ConfigDict(extra="ignore")
    fluency: ESConvFluency = Field(description="Fluency")
    identification: Identification = Field(description="Identification")
    comforting: Comforting = Field(description="Comforting")
    suggestion: ESConvSuggestion = Field(description="Suggestion")
    overall: ESConvOverall = Field(description="Overall")


# -- ESC-Eval (Zhao et al., 2024) ---------------------------------------------------------------


class ESCEvalFluency(DimensionScore):
    score: int = Field(
        ge=1,
        le=5,
        description="Fluency: is the supporter's language fluent, coherent and consistent with what was "
        "said before? 1 = incoherent or contradictory; 3 = coherent with some slips or non sequiturs; "
        "5 = fluent and coherent throughout.",
    )


class Diversity(DimensionScore):
    score: int = Field(
        ge=1,
        le=5,
        description="Diversity: is the supporter's expression varied in wording, sentence form and content "
        "across turns, rather than repeating templates? 1 = the same phrases again and again; 3 = some "
        "variety; 5 = varied, fresh expression in every turn.",
    )


class Empathy(DimensionScore):
    score: int = Field(
        ge=1,
        le=5,
        description="Empathy: does the supporter understand and acknowledge the seeker's feelings and "
        "point of view? 1 = ignores or misreads the feelings; 3 = acknowledges feelings in generic "
        "terms; 5 = reflects the seeker's specific feelings and perspective accurately.",
    )


class SuggestionEffectiveness(DimensionScore):
    score: int = Field(
        ge=1,
        le=5,
        description="Suggestion effectiveness: are the supporter's suggestions and information relevant, "
        "actionable and likely to help? 1 = none when needed, or counter-productive; 3 = somewhat useful "
        "but vague; 5 = specific, actionable and clearly helpful.",
    )


class Humanoid(DimensionScore):
    score: int = Field(
        ge=1,
        le=5,
        description="Humanoid: does the supporter sound like a caring person rather than an AI or a "
        "script? 1 = robotic, formulaic or says it is an AI; 3 = mostly natural with machine-like "
        "patterns; 5 = indistinguishable from a caring person.",
    )


class EmotionalKnowledge(DimensionScore):
    score: int = Field(
        ge=1,
        le=5,
        description="Emotional knowledge: does the supporter show sound knowledge of emotions and of "
        "support skills (naming emotions right, knowing when to explore, reflect, reassure or advise)? "
        "1 = misjudges emotions or uses the wrong skill at the wrong time; 3 = basic, sometimes "
        "mistimed; 5 = skilled and well timed.",
    )


class OverallPreference(DimensionScore):
    score: int = Field(
        ge=1,
        le=5,
        description="Overall preference: how much would a help-seeker prefer this supporter overall? "
        "1 = would avoid it; 3 = neutral; 5 = would clearly choose it.",
    )


class ESCEvalRubric(BaseModel):
    """ESC-Eval's dimensions (Zhao et al., 2024), on a 1–5 scale."""

    model_config = ConfigDict(extra="ignore")
    fluency: ESCEvalFluency = Field(description="Fluency")
    diversity: Diversity = Field(description="Diversity")
    empathy: Empathy = Field(description="Empathy")
    suggestion_effectiveness: SuggestionEffectiveness = Field(description="Suggestion effectiveness")
    humanoid: Humanoid = Field(description="Humanoid")
    emotional_knowledge: EmotionalKnowledge = Field(description="Emotional knowledge")
    overall_preference: OverallPreference = Field(description="Overall preference")


RUBRICS: dict[str, type[BaseModel]] = {"esconv": ESConvRubric, "esc-eval": ESCEvalRubric}


def rubric_model(name: str) -> type[BaseModel]:
    from socialsim.errors import UserError

    try:
        return RUBRICS[name]
    except KeyError:
        raise UserError(f"unknown rubric {name!r}: use one of {', '.join(RUBRICS)}") from None


def dimensions(rubric: type[BaseModel]) -> list[dict[str, str]]:
    """The rubric text, read from the models: ``[{name, title, description}]`` in field order."""
    out = []
    for name, f in rubric.model_fields.items():
        dim: Any = f.annotation
        out.append(
            {
                "name": name,
                "title": f.description or name,
                "description": dim.model_fields["score"].description or "",
            }
        )
    return out


PAIR_REASON = "One short sentence comparing what the two supporters said."


@cache
def pairwise_model(rubric: type[BaseModel]) -> type[BaseModel]:
    """The pairwise form of a rubric set: per dimension a reason and a winner "A", "B" or "tie",
    described by the same rubric text as the 1–5 score."""
    fields: dict[str, Any] = {}
    for dim in dimensions(rubric):
        verdict = create_model(
            f"{rubric.__name__}_{dim['name']}_comparison",
            __config__=ConfigDict(extra="ignore"),
            reason=(str, Field(description=PAIR_REASON)),
            winner=(
                Literal["A", "B", "tie"],
                Field(
                    description="Which supporter does better on this criterion: 'A', 'B', or 'tie' when "
                    "neither is clearly better. " + dim["description"]
                ),
            ),
        )
        fields[dim["name"]] = (verdict, Field(description=dim["title"]))
    return create_model(f"{rubric.__name__}Pairwise", __config__=ConfigDict(extra="ignore"), **fields)
