"""Typed data of socialsim: personas, strategies, supporter thoughts, turns and dialogues.

Every stage reads and writes these pydantic v2 models, so a corpus written by one stage is
validated when the next one reads it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from socialsim.io import atomic_write_lines, iter_jsonl

# ESConv's strategies (labels, definitions, older spellings) live in `socialsim.taxonomy`; re-exported here
from socialsim.taxonomy import STRATEGY_ALIASES as STRATEGY_ALIASES
from socialsim.taxonomy import Strategy as Strategy
from socialsim.taxonomy import parse_strategy as parse_strategy


class ProblemType(StrEnum):
    """ESConv's problem types followed by further types common in practice."""

    # ESConv's twelve
    ONGOING_DEPRESSION = "ongoing depression"
    JOB_CRISIS = "job crisis"
    BREAKUP = "breakup with partner"
    FRIENDS = "problems with friends"
    ACADEMIC = "academic pressure"
    SLEEP = "sleep problems"
    PARENTS = "conflict with parents"
    PROCRASTINATION = "procrastination"
    ALCOHOL = "alcohol abuse"
    APPEARANCE = "appearance anxiety"
    CHILDREN = "issues with children"
    BULLYING = "school bullying"
    # further types
    GRIEF = "grief"
    LONELINESS = "loneliness"
    CAREGIVER = "caregiver burnout"
    HEALTH_ANXIETY = "health anxiety"
    MONEY = "money stress"
    WORKPLACE = "workplace conflict"
    DISCRIMINATION = "discrimination"
    MIGRATION = "migration"
    INFERTILITY = "infertility"
    CHRONIC_ILLNESS = "chronic illness"
    DIVORCE = "divorce"
    IDENTITY = "identity and coming out"
    SOCIAL_ANXIETY = "social anxiety"
    RETIREMENT = "retirement"
    PREGNANCY_LOSS = "pregnancy loss"


ESCONV_PROBLEM_TYPES: tuple[ProblemType, ...] = tuple(ProblemType)[:12]

PROBLEM_ALIASES: dict[str, ProblemType] = {
    "issues with parents": ProblemType.PARENTS,
    "issues with parent(s)": ProblemType.PARENTS,
    "issues with parent": ProblemType.PARENTS,
    "breakup": ProblemType.BREAKUP,
    "depression": ProblemType.ONGOING_DEPRESSION,
}


class EmotionType(StrEnum):
    """ESConv's emotion types followed by a few further ones."""

    ANXIETY = "anxiety"
    DEPRESSION = "depression"
    SADNESS = "sadness"
    ANGER = "anger"
    FEAR = "fear"
    SHAME = "shame"
    DISGUST = "disgust"
    NERVOUSNESS = "nervousness"
    PAIN = "pain"
    JEALOUSY = "jealousy"
    GUILT = "guilt"
    # further
    LONELINESS = "loneliness"
    FRUSTRATION = "frustration"
    HOPELESSNESS = "hopelessness"
    OVERWHELM = "overwhelm"


ESCONV_EMOTION_TYPES: tuple[EmotionType, ...] = tuple(EmotionType)[:11]


def _lookup_enum(enum: type[StrEnum], aliases: dict[str, StrEnum], value: object) -> object:
    if isinstance(value, str):
        key = value.strip().lower()
        for member in enum:
            if member.value == key:
                return member
        if key in aliases:
            return aliases[key]
    return value


class Level(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class BigFive(BaseModel):
    """Big Five personality levels."""

    model_config = ConfigDict(extra="forbid")
    openness: Level = Level.MEDIUM
    conscientiousness: Level = Level.MEDIUM
    extraversion: Level = Level.MEDIUM
    agreeableness: Level = Level.MEDIUM
    neuroticism: Level = Level.MEDIUM


class Disclosure(BaseModel):
    """What the seeker can reveal, layer by layer: 0 surface, 1 context and events, 2 core worry."""

    model_config = ConfigDict(extra="forbid")
    surface: str = Field(min_length=3, description="The complaint the seeker opens with.")
    context: str = Field(min_length=3, description="The events and timeline behind it.")
    core: str = Field(min_length=3, description="The core worry or belief, said last.")

    def layer(self, index: int) -> str:
        return (self.surface, self.context, self.core)[index]


DISCLOSURE_LAYERS = ("surface", "context", "core")


class Persona(BaseModel):
    """A help-seeker the simulator plays."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_.\-]+$")
    name: str = Field(min_length=1)
    age: int = Field(ge=12, le=100)
    gender: str = Field(min_length=1)
    occupation: str = Field(min_length=1)
    problem_type: ProblemType
    emotion_type: EmotionType
    initial_intensity: int = Field(ge=1, le=5, description="Emotion intensity 1 (mild) to 5 (severe).")
    situation: str = Field(min_length=5, description="The situation in the seeker's own voice.")
    disclosure: Disclosure
    # Fields below are optional so a minimal persona stays small; the full bank fills them.
    life_stage: str | None = None
    locale: str | None = None
    personality: BigFive | None = None
    experience_type: Literal["current", "previous"] = "current"
    coping_tried: list[str] = Field(default_factory=list)
    support_preferences: list[str] = Field(default_factory=list)
    talk_style: str | None = Field(default=None, description="e.g. 'terse, informal'")
    topic: str | None = Field(default=None, description="The source's own topic label (e.g. SocialSim's 'Study').")
    subtopic: str | None = Field(default=None, description="The source's own subtopic label(s).")
    risk: Literal["none", "passive_death_thoughts"] = "none"

    @field_validator("problem_type", mode="before")
    @classmethod
    def _problem(cls, v: object) -> object:
        return _lookup_enum(ProblemType, PROBLEM_ALIASES, v)

    @field_validator("emotion_type", mode="before")
    @classmethod
    def _emotion(cls, v: object) -> object:
        return _lookup_enum(EmotionType, {}, v)


Intensity = Annotated[int, Field(ge=1, le=5)]


class SupporterThought(BaseModel):
    """What the supporter reasons before each reply (social awareness)."""

    model_config = ConfigDict(extra="forbid")
    emotion: str = Field(min_length=1, max_length=40, description="The seeker's main emotion now.")
    intensity: Intensity = Field(description="Its intensity, 1 (mild) to 5 (severe).")
    cause: str = Field(min_length=1, max_length=300, description="The likely cause of the emotion.")
    need: str = Field(min_length=1, max_length=300, description="What the seeker needs right now.")
    strategy: Strategy = Field(description="Which ESConv strategy to use in the next reply.")
    rationale: str = Field(min_length=1, max_length=300, description="One line: why this strategy.")

    @field_validator("strategy", mode="before")
    @classmethod
    def _strategy(cls, v: object) -> object:
        return parse_strategy(v) if isinstance(v, str) else v


class ReplyAct(StrEnum):
    """What a supporter reply mainly did, as the seeker felt it."""

    ASKED = "asked"
    REFLECTED = "reflected"
    VALIDATED = "validated"
    REASSURED = "reassured"
    SHARED = "shared"
    ADVISED = "advised"
    INFORMED = "informed"
    OTHER = "other"


class SeekerAppraisal(BaseModel):
    """How the seeker took the supporter's last reply (made by the seeker's model before it answers).
    The ``appraisal`` disclosure policy turns these into layers (see `socialsim.agents.disclosure`)."""

    model_config = ConfigDict(extra="forbid")
    felt_understood: Intensity = Field(description="1 (not at all) to 5 (completely).")
    judged_or_rushed: bool = Field(description="The reply judged the seeker or rushed them.")
    reply_did: ReplyAct = Field(description="What the reply mainly did.")
    ready_to_say_more: bool = Field(description="The seeker is ready to say more than so far.")

    @field_validator("reply_did", mode="before")
    @classmethod
    def _act(cls, v: object) -> object:
        return v.strip().lower() if isinstance(v, str) else v


class RealizedStrategy(BaseModel):
    """The strategy a supporter reply carries out, labelled from its text alone."""

    model_config = ConfigDict(extra="forbid")
    strategy: Strategy

    @field_validator("strategy", mode="before")
    @classmethod
    def _strategy(cls, v: object) -> object:
        return parse_strategy(v) if isinstance(v, str) else v


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        # two validated usages add up to a valid one: no validation pass (a few per call)
        return Usage.model_construct(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
        )


LabelFailure = Literal["realized_strategy", "appraisal"]
LABEL_FAILURES: tuple[LabelFailure, ...] = get_args(LabelFailure)
"""Kinds of label a turn may lack because making it failed (`Turn.label_failures`; counted in a run's summary)."""


RejectionCheck = Literal["role", "repeat", "narrates", "off_topic", "recites", "leak", "refusal", "empty"]
"""Why a seeker attempt was rejected (`socialsim.agents.seeker.Seeker.judge`): ``role`` sounds like the supporter
(the role check), ``repeat`` repeats an earlier seeker line, ``narrates`` names the persona, ``off_topic`` (runs made
before 2026-12-06 only: the check rejected most real seekers, `scripts/off_topic_esconv.py`) shared no word with the
persona's story, ``recites`` copies a run of the persona card's words, ``leak`` says a layer not yet
opened (`socialsim.agents.fidelity`), ``refusal`` the model refused or spoke as an AI ("I'm sorry, but I can't
assist with that", `socialsim.agents.common.refuses`: never kept), ``empty`` nothing usable. ``role``, ``repeat``
and ``refusal`` are role slips."""
ROLE_SLIP_CHECKS: tuple[RejectionCheck, ...] = ("role", "repeat", "refusal")
"""The checks whose rejection is a role slip: the seeker spoke as the supporter, said again what it had said, or the
model refused to play it."""


class Rejection(BaseModel):
    """A seeker attempt a check rejected: which check, the rule or score behind it, and the text."""

    model_config = ConfigDict(extra="forbid")
    check: RejectionCheck
    reason: str = Field(
        description="e.g. 'rule:sympathy' or 'voice:0.93' (role check), 'repeat:0.95', "
        "'card:disclosure.context:11' (recites: field and words copied in a row), 'leak:0.81'."
    )
    text: str
    voice_score: float | None = Field(
        default=None,
        description="The role check's learned supporter-voice score of the attempt (0..1; None: not scored, e.g. "
        "empty). When every attempt fails, the seeker keeps the least supporter-like one.",
    )


class StrategyAttempt(BaseModel):
    """A supporter reply the strategy check scored (`socialsim.recognize.strategy_check`)."""

    model_config = ConfigDict(extra="forbid")
    text: str
    realized_strategy: Strategy = Field(description="The strategy recognizer's label of this reply.")
    declared_prob: float = Field(description="The recognizer's probability of the thought's declared strategy.")
    passed: bool = Field(description="The declared strategy's probability reached its calibrated threshold.")


class Turn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    speaker: Literal["seeker", "supporter"]
    text: str
    strategy: Strategy | None = None
    thought: SupporterThought | None = None
    thought_text: str | None = Field(
        default=None,
        description="Supporter turns: free-text reasoning before the reply when the source has no structured "
        "thought (e.g. SSConv's 'Supporter Step by Step Reasoning').",
    )
    disclosure_layer: int | None = Field(default=None, ge=0, le=2)
    role_fallback: bool = Field(
        default=False,
        description="Seeker turns: the text is a fixed fallback line, not the model's: every attempt came back "
        "empty or was a refusal. (Runs made before #26 wrote the persona card's layer text here after a role drift.)",
    )
    slip: RejectionCheck | None = Field(
        default=None,
        description="Seeker turns: every attempt failed a check and the kept line is the least supporter-like "
        "attempt (lowest `Rejection.voice_score`, role-check hits last); the check it failed ('role' or 'repeat': "
        "a role slip). None: the line passed every check.",
    )
    rejected: list[Rejection] = Field(
        default_factory=list,
        description="Seeker turns: every attempt a check rejected, in order, each with its reason (a kept slip "
        "is among them).",
    )
    usage: Usage = Field(default_factory=Usage)
    latency_s: float = 0.0
    calls: int = 0
    thought_attempts: int | None = Field(
        default=None, description="Supporter turns: calls the thought took until it validated (1 = first try)."
    )
    leaks: int = Field(
        default=0,
        description="Supporter turns: replies regenerated because they leaked prompt text (template phrases, "
        "field names, role tags).",
    )
    echoes: int = Field(
        default=0,
        description="Supporter turns: replies regenerated because they copied 8 or more words in a row of the "
        "seeker line they answer (`socialsim.agents.supporter.echoes_seeker`) or of one of the supporter's own "
        "earlier replies (`repeats_itself`).",
    )
    cut_words: int = Field(
        default=0,
        description="Supporter turns: words cut from the end of the model's reply to keep it to ESConv's length "
        "(two sentences, three for suggestions and information; `socialsim.agents.supporter.shorten`).",
    )
    appraisal: SeekerAppraisal | None = Field(
        default=None,
        description="Seeker turns: the seeker's appraisal of the supporter reply just before (None: not made, "
        "or the appraisal output did not validate; then `label_failures` holds 'appraisal').",
    )
    realized_strategy: Strategy | None = Field(
        default=None,
        description="Supporter turns: the strategy read from the reply (and the utterances before it) by the "
        "strategy recognizer or the LLM classifier, never from the thought; compare with `strategy`, the declared one.",
    )
    realized_probs: dict[str, float] | None = Field(
        default=None,
        description="Supporter turns labelled by the strategy recognizer: the probability of each of ESConv's 8 "
        "strategies, by label (they sum to 1; `realized_strategy` is the most probable). None when the LLM "
        "classifier labelled the reply (it gives no probabilities) or nothing did.",
    )
    strategy_attempts: list[StrategyAttempt] = Field(
        default_factory=list,
        description="Supporter turns with the strategy check on (``simulate --strategy-check N``): every reply it "
        "scored, in order (the first is the first try). A reply whose declared strategy is improbable is regenerated "
        "at most N times; the kept reply is the first that passed, else the one most like its declared strategy.",
    )
    label_failures: list[LabelFailure] = Field(
        default_factory=list,
        description="Labels that could not be made on this turn (`LABEL_FAILURES`): 'realized_strategy' (the "
        "classifier or recognizer could not label the reply), 'appraisal' (the seeker's appraisal did not validate).",
    )
    fidelity: dict[str, float | bool | int] | None = Field(
        default=None,
        description="Seeker turns: fidelity checks (leak: said an unopened layer; drift: far from the persona; "
        "their similarities; leak_regenerations).",
    )
    risk: Literal["none", "self_harm", "suicide", "harm_to_others"] | None = Field(
        default=None,
        description="Seeker turns: the crisis risk that routed the message to the crisis protocol ('none' on the "
        "check_in and none tiers; None: not checked).",
    )
    risk_reason: str | None = Field(
        default=None,
        description="Seeker turns: the safety rule behind `risk` (or the stage, when no rule decided: 'learned', "
        "'followup', 'classifier'). Supporter turns the safety layer wrote or changed: 'protocol:<category>' "
        "(the fixed protocol reply), 'check_in:<category>' (a normal reply with the check-in question appended) "
        "or 'output_screen:<rule>' (a reply replaced for means or method content).",
    )
    safety_tier: Literal["none", "check_in", "protocol"] | None = Field(
        default=None,
        description="Seeker turns: the safety layer's tier: 'protocol' (the supporter's next turn is the fixed "
        "crisis protocol), 'check_in' (a normal reply with the check-in question), 'none' (None: not checked).",
    )
    safety_stage: Literal["rules", "learned", "classifier", "followup", "none"] | None = Field(
        default=None,
        description="Seeker turns: the safety stage that decided the tier ('followup': the seeker's answer to a "
        "protocol reply or check-in; 'none': no stage found risk).",
    )
    safety_score: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Seeker turns: the learned safety stage's risk score (None: the learned stage did not score it).",
    )


EndReason = Literal["seeker_goodbye", "seeker_dismissed", "turn_cap", "failure"]
"""``seeker_dismissed``: with the appraisal policy, the seeker left early because it kept feeling dismissed."""


class Dialogue(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12])
    persona_id: str
    persona: Persona | None = None
    backend: str
    model: str
    seed: int
    turns: list[Turn] = Field(default_factory=list)
    end_reason: EndReason | None = None
    status: Literal["ok", "failed"] = "ok"
    failure_reason: str | None = None
    quality: Literal["ok", "seeker_slipped"] = Field(
        default="ok",
        description="'seeker_slipped': the seeker slipped (`Turn.slip`, or a fixed `Turn.role_fallback` line) on "
        "more than half of its turns (`seeker_slipped`); set by the run engine. The status stays 'ok' (the "
        "dialogue finished); `filter --drop-seeker-slipped` drops these.",
    )
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def usage(self) -> Usage:
        total = Usage()
        for t in self.turns:
            total = total + t.usage
        return total

    @property
    def seeker_slips(self) -> int:
        """Seeker turns whose kept line is a slip or a fixed fallback line."""
        return sum(1 for t in self.turns if t.speaker == "seeker" and (t.slip is not None or t.role_fallback))

    @property
    def seeker_slipped(self) -> bool:
        """The seeker slipped on more than half of its turns (whatever `quality` says: older runs lack it)."""
        n = sum(1 for t in self.turns if t.speaker == "seeker")
        return n > 0 and 2 * self.seeker_slips > n

    @property
    def max_disclosure(self) -> int:
        layers = [t.disclosure_layer for t in self.turns if t.disclosure_layer is not None]
        return max(layers, default=0)


def write_jsonl(items: Iterable[BaseModel], path: Path) -> int:
    """Write models as JSON lines atomically (`socialsim.io.atomic_write_lines`). Returns the count."""
    return atomic_write_lines(path, (item.model_dump_json() for item in items))


def read_dialogues(path: Path) -> list[Dialogue]:
    from socialsim.errors import validation_message

    out = []
    for lineno, obj in iter_jsonl(path):
        try:
            out.append(Dialogue.model_validate(obj))
        except Exception as e:  # pydantic.ValidationError
            raise ValueError(validation_message(path, lineno, e)) from None
    return out


# -- run configuration ------------------------------------------------------------------------


class BackendConfig(BaseModel):
    """Which LLM answers. Every field here can change the output, so all are hashed."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["local", "openai", "hf"] = "local"
    base_url: str | None = None
    model: str | None = None
    model_path: str | None = None
    structured: Literal["auto", "json_schema", "json_object", "off"] = "auto"


SeekerFormat = Literal["text", "transcript", "chat"]
"""How the seeker's prompt holds the conversation (`SimulationConfig.seeker_format`)."""

RealizedMode = Literal["recognizer", "llm", "off"]
REALIZED_MODES: tuple[RealizedMode, ...] = get_args(RealizedMode)
"""Who labels a supporter reply's realized strategy (`SimulationConfig.realized_strategy`)."""
LEGACY_REALIZED: dict[str, bool] = {"llm": True, "off": False}
"""The booleans run configs held before the recognizer existed (``realized_strategy: true`` was the LLM classifier)."""


def parse_realized_mode(v: object) -> object:
    """A realized-strategy mode from a config value: a mode name (any case), or an older config's boolean
    (true: 'llm', false: 'off'; also as text, as YAML or a command line may give it). Anything else is left
    for validation to refuse."""
    if isinstance(v, bool):
        return "llm" if v else "off"
    if isinstance(v, str):
        key = v.strip().lower()
        return {"true": "llm", "false": "off"}.get(key, key)
    return v


ROLES = ("seeker", "supporter", "classifier")
"""Roles that may run on their own backend (the seeker's model also makes its appraisals)."""


class SimulationConfig(BaseModel):
    """Everything that decides a run's corpus; its hash guards resumes."""

    model_config = ConfigDict(extra="forbid")
    backend: BackendConfig = Field(default_factory=BackendConfig)
    roles: dict[Literal["seeker", "supporter", "classifier"], BackendConfig] = Field(
        default_factory=dict,
        description="Role-specific backends (`ROLES`); a role not listed uses `backend`.",
    )
    personas: str = Field(description="Persona file path, or 'default' for the built-in bank.")
    personas_sha256: str
    n: int = Field(ge=1)
    seed: int = 0
    sampling: Literal["stratified", "uniform", "sequential"] = "stratified"
    max_turns: int = Field(default=8, ge=1, le=100)
    feel_heard_after: int = Field(default=2, ge=0)
    seeker_temperature: float = Field(default=0.8, ge=0, le=2)
    supporter_temperature: float = Field(default=0.7, ge=0, le=2)
    safety: bool = Field(
        default=True,
        description="Label seeker turns with the crisis safety layer (rules, plus the learned stage where the [eval] "
        "extra is installed; Turn.safety_tier, Turn.risk): a protocol-tier seeker turn gets the fixed crisis-protocol "
        "reply instead of a model reply, a check_in-tier one a model reply with the check-in question appended. "
        "Changes the corpus, so it is part of the hash.",
    )
    disclosure: Literal["observed", "observed+appraisal", "appraisal", "strategy-rule"] = Field(
        default="observed",
        description="How the seeker's disclosure is earned (`socialsim.agents.disclosure`): 'observed' (what each "
        "reply did, read by the strategy recognizer, weighted by whether it answered the seeker's last line; no extra "
        "call), "
        "'observed+appraisal' (the same, the seeker's appraisal of each reply adding a little; one call a turn), "
        "'appraisal' (the seeker's own appraisal alone) or 'strategy-rule' (points per declared strategy).",
    )
    fidelity: bool = Field(
        default=False,
        description="Seeker fidelity checks per seeker turn (embedding leak and drift; leaked lines regenerated). "
        "Off by default: it loads an embedding model into the run (about 10x the CPU of a run against a server).",
    )
    realized_strategy: RealizedMode = Field(
        default="recognizer",
        description="Who labels each supporter reply's realized strategy (`Turn.realized_strategy`): 'recognizer' "
        "(the learned strategy recognizer, with probabilities, no LLM call), 'llm' (the LLM classifier on the "
        "classifier role's model, one call a turn) or 'off'. Manifests from before the recognizer say true "
        "(= 'llm') or false (= 'off').",
    )
    strategy_check: int = Field(
        default=0,
        ge=0,
        le=5,
        description="Regenerate a supporter reply whose declared strategy the strategy recognizer finds improbable "
        "(below the threshold calibrated on ESConv's human replies, `socialsim.recognize.strategy_check`), at most "
        "this many times; 0 = off. Needs realized_strategy 'recognizer'.",
    )
    seeker_format: SeekerFormat = Field(
        default="transcript",
        description="How the seeker's prompt holds the conversation: 'text' (a written transcript of the chat that "
        "the model continues after the seeker's name, as a plain-text completion without a chat template; a new run "
        "on an embedded model takes it), 'transcript' (a chat request: one user message with the chat written out; "
        "a new run on a server takes it, and runs made before the option existed used it) or 'chat' (the "
        "supporter's messages as user turns, the seeker's own earlier lines as the model's turns, the persona in a "
        "second-person system prompt and the turn's notes in a closing system message). On the 1.5B model, 'text' "
        "slipped into the supporter's voice least (docs/method/fidelity.md).",
    )
    templates_digest: str = ""

    @field_validator("realized_strategy", mode="before")
    @classmethod
    def _realized(cls, v: object) -> object:
        return parse_realized_mode(v)

    def config_hash(self) -> str:
        """The hash of the config's JSON. ``realized_strategy`` 'llm' and 'off' are hashed as the true and false
        that runs wrote before the recognizer existed, and ``strategy_check`` 0 and ``seeker_format`` 'transcript'
        are left out, so those runs keep their hash (their dialogue ids derive from it) and resume unchanged."""
        import hashlib

        data = self.model_dump(mode="json")
        data["realized_strategy"] = LEGACY_REALIZED.get(self.realized_strategy, self.realized_strategy)
        if not data.get("strategy_check"):  # off: hashed as runs made before the check existed
            data.pop("strategy_check", None)
        if data.get("seeker_format") == "transcript":  # as runs made before the option existed
            data.pop("seeker_format", None)
        blob = json.dumps(data, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


class ExecutionConfig(BaseModel):
    """How a run executes; changing these never changes the corpus."""

    model_config = ConfigDict(extra="forbid")
    concurrency: int = Field(default=8, ge=1, description="LLM calls in flight at once.")
    http_client: Literal["openai", "aiohttp"] = "aiohttp"
    api_key_env: str = "OPENAI_API_KEY"
    dialogues_in_flight: int | None = Field(default=None, ge=1)
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    max_attempts: int = Field(default=5, ge=1, le=20)
    timeout_s: float = Field(default=60.0, gt=0)
    max_cost: float | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=0)
    price_in_per_m: float = Field(default=0.0, ge=0)
    price_out_per_m: float = Field(default=0.0, ge=0)
    cache: bool = True
    cache_path: str | None = None
    replica_urls: list[str] = Field(
        default_factory=list,
        description="More base URLs serving the same model as backend.base_url (--base-url given again): calls "
        "go to the replica with the fewest in flight; the cache and seeds do not depend on which one answers.",
    )
