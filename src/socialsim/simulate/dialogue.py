"""One seeker–supporter conversation, from the seeker's opening to goodbye, cap or failure."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from socialsim.agents.disclosure import (
    DisclosurePolicy,
    Evidence,
    answered_score,
    make_policy,
    note_self_recognized,
)
from socialsim.agents.fidelity import FidelityCheck
from socialsim.agents.prompts import Prompts
from socialsim.agents.seeker import Seeker, says_goodbye
from socialsim.agents.strategy_classifier import StrategyClassifier
from socialsim.agents.supporter import Supporter
from socialsim.errors import StructuredOutputError
from socialsim.llm.client import LLM
from socialsim.llm.scheduling import current_ticket
from socialsim.safety.layer import SafetyDecision, SafetyLayer, label_seeker_turn
from socialsim.schema import (
    REALIZED_MODES,
    Dialogue,
    Persona,
    SeekerAppraisal,
    SimulationConfig,
    StrategyAttempt,
    Turn,
    parse_realized_mode,
)

if TYPE_CHECKING:
    from socialsim.recognize.strategy import StrategyPrediction

CALLS_PER_TURN = 3
"""A supporter turn is a thought, a reply and the seeker's answer (regenerations aside); the appraisal (a
policy that `wants_appraisal`) and the LLM classifier's realized-strategy label add one call each when on (the
recognizer and the answered signal make none)."""


@lru_cache(maxsize=1)
def default_safety() -> SafetyLayer:
    """The safety layer simulations label seeker turns with, built once per process: the rule stage and, where
    it is installed, the learned stage (loaded and warmed here; it shares the embedding model with the role
    check). Without the [eval] extra it is the rule stage alone, said once on stderr; a broken model file is a
    `UserError` (`socialsim.safety.build.load_learned`). No LLM classifier and no event log: the labels on the
    turns are the record."""
    from socialsim.safety.build import LayerOptions, load_learned

    learned = load_learned(LayerOptions(classify="off"))
    if learned is not None:
        learned.warm()
    return SafetyLayer(learned=learned, source="simulate")


async def recognize_reply(text: str, context: Sequence[tuple[str, str]]) -> StrategyPrediction:
    """The strategy recognizer's label of one supporter reply, given the utterances before it as (speaker, text),
    oldest first. CPU work (tens of ms), so it runs off the event loop; the recognizer loads once per process on
    first use (`default_recognizer`: the shipped model, or ``$SOCIALSIM_STRATEGY_MODEL``)."""
    from socialsim.recognize.strategy import default_recognizer

    return await asyncio.to_thread(lambda: default_recognizer().predict_one(text, context))


async def reply_evidence(
    policy: DisclosurePolicy, reply: Turn, before: Sequence[Turn], appraisal: SeekerAppraisal | None
) -> Evidence:
    """The `Evidence` of one supporter ``reply`` for ``policy``, given the turns ``before`` it: the recognizer's
    probabilities (the turn's own; when it has none and the policy reads them, the recognizer is run here, said
    once on stderr, and the turn is left as it was), whether it is the crisis protocol, the answered signal
    against the seeker's last line (when the policy reads it), the declared strategy and ``appraisal``."""
    protocol = (reply.risk_reason or "").startswith("protocol:")
    probs = reply.realized_probs
    if probs is None and policy.needs_probs and not protocol:
        note_self_recognized(policy.name)
        probs = (await recognize_reply(reply.text, [(t.speaker, t.text) for t in before])).as_json()
    answered = None
    if policy.needs_answered and not protocol:
        line = next((t.text for t in reversed(before) if t.speaker == "seeker"), None)
        answered = await asyncio.to_thread(answered_score, reply.text, line)
    return Evidence(
        probs=probs, declared=reply.strategy, protocol=protocol, answered=answered, layer=policy.layer,
        appraisal=appraisal,
    )  # fmt: skip


DialogueEvents = Callable[[str, str, Any], None]
"""``on_event(kind, dialogue_id, payload)``, called as a dialogue unfolds: ("start", Persona), ("generating",
"seeker" | "thought" | "reply"), ("thought", SupporterThought), ("turn", Turn), ("end", Dialogue)."""


_SIM = SimulationConfig.model_fields  # the corpus options' defaults live in the run config, once


@dataclass(frozen=True)
class DialogueConfig:
    """How one dialogue is played. The fields a run config also has take its defaults (and, in a run,
    its values: `from_simulation`)."""

    max_turns: int = _SIM["max_turns"].default
    """Cap on supporter turns; the seeker answers each."""
    feel_heard_after: int = _SIM["feel_heard_after"].default
    """Supporter turns after the core worry is out before the seeker feels heard and says goodbye."""
    seeker_temperature: float = _SIM["seeker_temperature"].default
    supporter_temperature: float = _SIM["supporter_temperature"].default
    max_regenerations: int = 2
    parse_attempts: int = 3
    disclosure: str = _SIM["disclosure"].default
    """Disclosure policy (`socialsim.agents.disclosure.DISCLOSURE_POLICIES`)."""
    fidelity: bool = _SIM["fidelity"].default
    """Check each seeker line for leaks of unopened layers (regenerated) and persona drift (`FidelityCheck`)."""
    realized_strategy: str = _SIM["realized_strategy"].default
    """Who labels each supporter reply's realized strategy: 'recognizer' (`socialsim.recognize.strategy`, with
    probabilities, no LLM call), 'llm' (`StrategyClassifier`, one call a turn) or 'off'."""
    strategy_check: int = _SIM["strategy_check"].default
    """Regenerate a reply whose declared strategy the recognizer finds improbable, at most this many times (0: off;
    `socialsim.recognize.strategy_check`). Needs ``realized_strategy`` 'recognizer'."""
    seeker_format: str = _SIM["seeker_format"].default
    """How the seeker's prompt holds the chat: 'chat' (the supporter as the user, the seeker as the model) or
    'transcript' (the chat written out in one user message)."""
    safety: bool = _SIM["safety"].default
    """Label seeker turns with the crisis safety layer (``Turn.safety_tier``, ``Turn.risk``): a protocol-tier
    seeker turn gets the fixed protocol reply, a check_in-tier one a normal reply with the check-in question,
    and supporter replies with means/method content are replaced."""

    def __post_init__(self) -> None:  # one spelling of the labeller (an older caller's True is the LLM classifier)
        mode = parse_realized_mode(self.realized_strategy)
        if mode not in REALIZED_MODES:
            raise ValueError(f"realized_strategy {self.realized_strategy!r}: use one of {', '.join(REALIZED_MODES)}")
        object.__setattr__(self, "realized_strategy", mode)
        if self.strategy_check and mode != "recognizer":
            raise ValueError("strategy_check needs realized_strategy 'recognizer' (the check reads its probabilities)")

    @classmethod
    def from_simulation(cls, sim: SimulationConfig) -> DialogueConfig:
        """The dialogue settings of a run: every field the run config shares, with the run's value."""
        return cls(**{f.name: getattr(sim, f.name) for f in fields(cls) if f.name in _SIM})


async def simulate_dialogue(
    llm: LLM,
    persona: Persona,
    *,
    seed: int,
    dialogue_id: str,
    config: DialogueConfig | None = None,
    prompts: Prompts | None = None,
    supporter_llm: LLM | None = None,
    supporter: Any = None,
    safety: SafetyLayer | None = None,
    on_event: DialogueEvents | None = None,
    classifier_llm: LLM | None = None,
) -> Dialogue:
    """Simulate one dialogue. Unparseable model output ends it with status ``failed``; backend
    and budget errors propagate to the caller (the dialogue is then not recorded). `supporter`
    replaces the thought-first `Supporter` (e.g. a plain chatbot under evaluation).

    Safety (``config.safety``, on by default): every seeker turn gets a tier from the safety layer
    (`default_safety`: the rule stage and the learned stage where installed, and the answer to a protocol reply or
    check-in; no LLM classifier, nothing written to an event log: ``safety_tier``, ``safety_stage``,
    ``safety_score`` and ``risk`` on the turn are the record). After a protocol-tier seeker turn the supporter's
    turn is the fixed crisis protocol (strategy Question, ``risk_reason`` 'protocol:<category>'), with resources
    for the persona's locale; after a check_in-tier one it is the supporter's normal reply with the check-in
    question appended in the persona's language (``risk_reason`` 'check_in:<category>').

    Disclosure (``config.disclosure``, a `DisclosurePolicy`): after each supporter reply the policy observes its
    `Evidence` (`reply_evidence`: by default the recognizer's probabilities and the answered signal) and gives the
    layer the seeker may speak from, and decides when the seeker leaves, heard (``seeker_goodbye``) or dismissed
    (``seeker_dismissed``). A policy that `wants_appraisal` gets the seeker model's appraisal of each reply
    (`Turn.appraisal` on the seeker's next turn).

    Realized strategy (``config.realized_strategy``): 'recognizer' (default) labels each supporter reply with the
    strategy recognizer, context = the dialogue's turns before it (``Turn.realized_strategy`` and
    ``realized_probs``); 'llm' with the LLM classifier on ``classifier_llm`` (default: ``llm``); 'off' not at all.

    ``on_event`` sees each turn as soon as it is done (see `DialogueEvents`)."""
    cfg = config or DialogueConfig()
    guard = (safety or default_safety()) if cfg.safety else None
    prompts = prompts or Prompts()
    sup_llm = supporter_llm or llm
    seeker = Seeker(
        llm,
        persona,
        prompts,
        seed=seed,
        temperature=cfg.seeker_temperature,
        max_regenerations=cfg.max_regenerations,
        fidelity=FidelityCheck(persona) if cfg.fidelity else None,
        prompt_format=cfg.seeker_format,
    )
    supporter = supporter or Supporter(
        sup_llm,
        prompts,
        seed=seed,
        temperature=cfg.supporter_temperature,
        parse_attempts=cfg.parse_attempts,
    )

    def emit(kind: str, payload: Any) -> None:
        if on_event is not None:
            on_event(kind, dialogue_id, payload)

    if on_event is not None and hasattr(supporter, "on_event"):
        supporter.on_event = emit
    d = Dialogue(
        id=dialogue_id,
        persona_id=persona.id,
        persona=persona,
        backend=sup_llm.backend.kind,
        model=sup_llm.backend.model,
        seed=seed,
    )
    policy = make_policy(cfg.disclosure, feel_heard_after=cfg.feel_heard_after)
    appraising = policy.wants_appraisal
    llm_labels = cfg.realized_strategy == "llm"
    classifier = StrategyClassifier(classifier_llm or llm, prompts, seed=seed) if llm_labels else None

    label: SafetyDecision | None = None  # the safety label of the latest seeker turn

    async def seeker_turn(
        layer: int,
        goodbye: bool,
        turn_index: int,
        dismissed: bool = False,
        appraisal: SeekerAppraisal | None = None,
        extra: Any = (),
        appraisal_failed: bool = False,
    ) -> Turn:
        nonlocal label
        emit("generating", "seeker")
        turn = await seeker.speak(d.turns, layer=layer, goodbye=goodbye, turn_index=turn_index, dismissed=dismissed)
        turn.appraisal = appraisal
        if appraisal_failed:
            turn.label_failures.append("appraisal")
        if extra:  # the appraisal's calls count on the seeker turn they belong to
            for c in extra:
                turn.usage = turn.usage + c.usage
            turn.calls += len(extra)
        d.turns.append(turn)
        emit("turn", turn)
        if guard is not None:
            if guard.learned is not None:  # the learned stage embeds the message: CPU work, off the event loop
                label = await asyncio.to_thread(label_seeker_turn, turn, list(d.turns), guard)
            else:
                label = label_seeker_turn(turn, d.turns, guard)
        return turn

    def screened(turn: Turn) -> Turn:
        if guard is not None:
            safe, hit = guard.screen(turn.text)
            if hit is not None:
                turn.text, turn.risk_reason = safe, f"output_screen:{hit.rule}"
        return turn

    async def checked(turn: Turn, i: int) -> Turn:
        """The recognizer's label of the reply and, with ``cfg.strategy_check``, the check: a reply whose declared
        strategy is improbable is rewritten (same thought, a note saying what it read as), at most that many
        times; the first that passes is kept, else the one most like its declared strategy. Every scored reply
        goes into ``strategy_attempts``; the kept turn carries the calls of all."""
        context = [(t.speaker, t.text) for t in d.turns]
        emit("generating", "realized")
        pred = await recognize_reply(turn.text, context)
        rewrite = getattr(supporter, "rewrite", None)
        if not cfg.strategy_check or turn.strategy is None or turn.thought is None or rewrite is None:
            turn.realized_strategy, turn.realized_probs = pred.strategy, pred.as_json()
            return turn
        from socialsim.recognize.strategy_check import default_check

        check, declared = default_check(), turn.strategy
        attempts: list[StrategyAttempt] = []
        best, latest = (turn, pred), turn
        for k in range(cfg.strategy_check + 1):
            if k:
                latest = screened(await rewrite(latest, d.turns, turn_index=i, number=k, realized=pred.strategy.value))
                emit("generating", "realized")
                pred = await recognize_reply(latest.text, context)
            probs = pred.as_json()
            p, ok = check.declared_probability(declared, probs), check.passes(declared, probs)
            attempts.append(StrategyAttempt(text=latest.text, realized_strategy=pred.strategy,
                                            declared_prob=round(p, 4), passed=ok))  # fmt: skip
            if ok or p > best[1].probs[declared]:
                best = (latest, pred)
            if ok:
                break
        kept, pred = best
        kept = kept.model_copy(update={"usage": latest.usage, "latency_s": latest.latency_s, "calls": latest.calls,
                                       "leaks": latest.leaks, "echoes": latest.echoes,
                                       "strategy_attempts": attempts})  # fmt: skip
        kept.realized_strategy, kept.realized_probs = pred.strategy, pred.as_json()
        return kept

    async def supporter_turn(i: int) -> Turn:
        if guard is not None and label is not None and label.tier == "protocol":
            return guard.protocol_turn(label, locale=persona.locale)
        turn = screened(await supporter.respond(d.turns, turn_index=i))
        if classifier is not None:
            emit("generating", "realized")
            turn.realized_strategy, done = await classifier.classify(turn.text, key=i)
            if turn.realized_strategy is None:
                turn.label_failures.append("realized_strategy")
            for c in done:
                turn.usage = turn.usage + c.usage
            turn.calls += len(done)
        elif cfg.realized_strategy == "recognizer":
            turn = await checked(turn, i)
        if guard is not None and label is not None and label.tier == "check_in":
            # after the realized strategy is read: it labels the model's reply, not the fixed question
            turn.text = guard.with_check_in(turn.text, label, locale=persona.locale)
            turn.risk_reason = f"check_in:{label.category}"
        return turn

    ticket = current_ticket()  # tells the engine's scheduler how much of this dialogue is left
    per_turn = CALLS_PER_TURN + int(appraising) + int(classifier is not None)
    ticket.expect(1 + per_turn * cfg.max_turns)
    emit("start", persona)
    try:
        await seeker_turn(layer=0, goodbye=False, turn_index=0)
        for i in range(cfg.max_turns):
            # The scheduler serves the dialogues with the most calls ahead first, so an estimate
            # too low starves a dialogue into running alone at the end: the policy bounds the turns left
            # (the strategy rule's goodbye is known once the core is out; a seeker who leaves on evidence
            # may never, so for the others the cap is the estimate).
            ticket.expect(per_turn * policy.turns_left(cfg.max_turns - i))
            sup_turn = await supporter_turn(i)
            d.turns.append(sup_turn)
            emit("turn", sup_turn)
            appraisal, spent = None, []
            if appraising:
                emit("generating", "appraisal")
                appraisal, spent = await seeker.appraise(d.turns, turn_index=i + 1)
            layer = policy.observe(await reply_evidence(policy, sup_turn, d.turns[:-1], appraisal))
            leave = policy.leaving()
            goodbye, dismissed = leave == "heard", leave == "dismissed"
            last = i == cfg.max_turns - 1
            seek_turn = await seeker_turn(
                layer=layer,
                goodbye=goodbye,
                turn_index=i + 1,
                dismissed=dismissed,
                appraisal=appraisal,
                extra=spent,
                appraisal_failed=appraising and appraisal is None,
            )
            if dismissed:
                d.end_reason = "seeker_dismissed"
                break
            if goodbye or (layer == 2 and says_goodbye(seek_turn.text)):
                d.end_reason = "seeker_goodbye"
                break
            if last:
                d.end_reason = "turn_cap"
    except StructuredOutputError as e:
        d.status = "failed"
        d.end_reason = "failure"
        d.failure_reason = str(e)
    emit("end", d)
    return d
