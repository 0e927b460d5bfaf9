"""`SafetyLayer`: the rule stage, the learned stage, the optional LLM stage, the answer to a protocol reply
or check-in, the fixed protocol, the check-in question and the event log, combined into one tier per
seeker message. See the package docstring for how the stages combine."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

from socialsim.errors import StructuredOutputError, UserError
from socialsim.safety.classifier import LLMClassifier, RiskVerdict
from socialsim.safety.events import SafetyEventLog
from socialsim.safety.followup import Answer, FollowupReader, load_followup
from socialsim.safety.learned import LearnedScore, LearnedStage
from socialsim.safety.protocol import PROTOCOL_STRATEGY, Protocol
from socialsim.safety.rules import RuleHit, RuleResult, RuleStage, load_rules
from socialsim.schema import Turn

ClassifyScope = Literal["ambiguous", "all", "off"]
CLASSIFY_SCOPES: tuple[str, ...] = ("ambiguous", "all", "off")

Tier = Literal["none", "check_in", "protocol"]
#: The safety tiers, lowest first: ``none`` (answer as usual), ``check_in`` (answer as usual and ask the
#: check-in question), ``protocol`` (the fixed crisis protocol replaces the reply).
TIERS: tuple[str, ...] = ("none", "check_in", "protocol")
Stage = Literal["rules", "learned", "classifier", "followup", "none"]
STAGES: tuple[str, ...] = ("rules", "learned", "classifier", "followup", "none")
SafetyReply = Literal["protocol", "check_in"]


@dataclass
class SafetyDecision:
    """What the safety layer decided about the latest seeker message."""

    tier: Tier
    category: str
    """``none``, ``suicide``, ``self_harm`` or ``harm_to_others`` (the category of the protocol reply or of
    the check-in question; ``none`` on the ``none`` tier)."""
    stage: Stage
    """The stage that decided the tier: ``rules``, ``learned``, ``classifier``, ``followup`` (the seeker's
    answer to a protocol reply or check-in: a confirm keeps the protocol, a denial ends it) or ``none``."""
    rules: RuleResult
    verdict: RiskVerdict | None = None
    classifier_error: str | None = None
    learned: LearnedScore | None = None
    learned_error: str | None = None
    """The learned stage failed (the message then gets a check-in: fail closed without a takeover)."""
    followup: bool = False
    """Protocol right after a protocol reply: the protocol's follow-up reply is due, not the first one again."""
    after: SafetyReply | None = None
    """The supporter turn just before the message was a protocol reply or a check-in."""
    answer: Answer | None = None
    """How the message answers it (`socialsim.safety.followup`): ``confirm``, ``deny`` or ``other``."""

    @property
    def flagged(self) -> bool:
        """The protocol replaces the reply (``tier == "protocol"``); for older callers, use `tier`."""
        return self.tier == "protocol"

    @property
    def score(self) -> float | None:
        """The learned stage's score, when it scored the message."""
        return self.learned.score if self.learned is not None else None

    @property
    def rule(self) -> str | None:
        return self.rules.rule

    @property
    def action(self) -> str:
        if self.tier == "protocol":
            return "protocol_followup" if self.followup else "protocol"
        if self.tier == "check_in":
            return "check_in"
        if self.answer == "deny":
            return "answer_denied"
        if self.rules.level == "ambiguous":
            return "cleared_by_learned" if self.learned is not None else "ambiguous_not_checked"
        return "none"

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "tier": self.tier,
            "flagged": self.flagged,
            "category": self.category,
            "stage": self.stage,
            "score": None if self.score is None else round(self.score, 4),
            "action": self.action,
            "rule_level": self.rules.level,
            "rule": self.rule,
        }
        if self.rules.matched:
            d["matched"] = self.rules.matched
        if self.after is not None:
            d["after"] = self.after
            d["answer"] = self.answer
        if self.verdict is not None:
            d["verdict"] = self.verdict.model_dump()
        if self.classifier_error:
            d["classifier_error"] = self.classifier_error
        if self.learned is not None:
            d["learned"] = self.learned.as_dict()
        if self.learned_error:
            d["learned_error"] = self.learned_error
        return d

    @property
    def worth_logging(self) -> bool:
        """Written to the event log: every protocol and check-in, every ambiguous rule hit (also when the
        learned stage scored it ``none``), every denial that ended a safety exchange, every stage failure."""
        return (
            self.tier != "none"
            or self.rules.level != "none"
            or self.answer == "deny"
            or bool(self.classifier_error or self.learned_error)
        )


def _last_seeker(history: list[Turn]) -> tuple[int, Turn] | None:
    for i in range(len(history) - 1, -1, -1):
        if history[i].speaker == "seeker":
            return i, history[i]
    return None


class SafetyLayer:
    """Checks seeker messages, writes the protocol reply and the check-in question, screens supporter
    replies, logs events. Every seeker message gets a tier (``none``, ``check_in``, ``protocol``); the
    package docstring says how the stages combine.

    ``learned``: the learned stage (`LearnedStage`, or any object with its ``score(message, context)``),
    asked about every message the rules do not route to the protocol; its tier counts, and any failure
    of it gives a check-in (fail closed without taking over the chat). None: no learned stage (an
    ambiguous rule hit then gets a check-in).
    ``classify``: ``ambiguous`` (default) asks the LLM classifier about messages the rules find ambiguous
    and that are not at the protocol yet; ``all`` also about messages the rules find nothing in; ``off``
    never asks. The classifier only raises: a risk verdict with high confidence gives the protocol, any
    other risk verdict a check-in; when it fails on an ambiguous message, the message gets a check-in.
    ``followup``: reads the answer right after a protocol reply or check-in (default: the shipped patterns).
    """

    def __init__(
        self,
        *,
        rules: RuleStage | None = None,
        learned: Any = None,
        protocol: Protocol | None = None,
        classifier: LLMClassifier | None = None,
        classify: str = "ambiguous",
        event_log: SafetyEventLog | None = None,
        source: str = "api",
        locale: str | None = None,
        followup: FollowupReader | None = None,
    ) -> None:
        if classify not in CLASSIFY_SCOPES:
            raise UserError(f"--classify {classify!r}: use one of {', '.join(CLASSIFY_SCOPES)}")
        self.rules = rules or load_rules()
        self.learned: LearnedStage | None = learned
        self.protocol = protocol or Protocol()
        self.classifier = classifier
        self.classify = classify if classifier is not None else "off"
        self.event_log = event_log
        self.source = source
        self.locale = locale
        self.followup = followup or (
            load_followup() if rules is None else FollowupReader(normalize=self.rules.normalize)
        )

    # -- context --------------------------------------------------------------------------------
    def reply_kind(self, turn: Turn) -> tuple[SafetyReply, str] | None:
        """(``protocol`` | ``check_in``, category) when a supporter turn was a protocol reply or carried the
        check-in question: from its ``risk_reason`` (``protocol:<category>``, ``check_in:<category>``) or,
        for histories from clients without socialsim's fields, from its text (`Protocol.identify`)."""
        if turn.speaker != "supporter":
            return None
        reason = turn.risk_reason or ""
        for kind in ("protocol", "check_in"):
            if reason.startswith(kind + ":"):
                category = reason.split(":", 1)[1]
                return kind, category if category in Protocol.CATEGORIES else "suicide"  # type: ignore[return-value]
        found = self.protocol.identify(turn.text)
        if found is None:
            return None
        category, variant = found
        return ("check_in" if variant == "check_in" else "protocol"), category

    def previous_reply(self, history: list[Turn], seeker_index: int) -> tuple[SafetyReply, str] | None:
        """What the supporter turn just before the seeker's message was, if a protocol reply or a check-in."""
        if seeker_index == 0:
            return None
        return self.reply_kind(history[seeker_index - 1])

    def context_start(self, history: list[Turn], seeker_index: int) -> int:
        """Where the context of the seeker's message starts: after the last denial that ended a safety
        exchange (the seeker said no to a protocol reply or check-in), so the messages before it do not keep
        raising the learned stage's score on everything said afterwards."""
        start = 0
        for j in range(seeker_index - 1):
            if (
                history[j + 1].speaker == "seeker"
                and self.reply_kind(history[j]) is not None
                and self.followup.classify(history[j + 1].text) == "deny"
            ):
                start = j + 2
        return start

    # -- assessing ------------------------------------------------------------------------------
    def assess_rules(self, history: list[Turn]) -> SafetyDecision:
        """The rule stage and the answer to a protocol reply or check-in, without the learned stage, the
        LLM or the log (an ambiguous hit then gets a check-in)."""
        return self.decide(history, learned=False)

    def decide(self, history: list[Turn], *, learned: bool = True) -> SafetyDecision:
        """Every stage but the LLM classifier on the latest seeker message, without the log. Synchronous:
        the learned stage is CPU work (call it in a thread from async code, as `assess` does)."""
        last = _last_seeker(history)
        if last is None:
            return SafetyDecision("none", "none", "none", RuleResult("none", "none"))
        idx, turn = last
        stage = self.learned if learned else None
        # with a learned stage to judge them, hits about the past, someone else or a story are ambiguous
        res = self.rules.check(turn.text, distance=stage is not None)
        prev = self.previous_reply(history, idx)
        after, prev_category = prev if prev is not None else (None, "suicide")
        answer = self.followup.classify(turn.text) if after is not None else None
        again = after == "protocol"  # protocol right after protocol: the follow-up reply

        def decision(tier: Tier, category: str, by: Stage, **kw: Any) -> SafetyDecision:
            return SafetyDecision(
                tier, category, by, res, after=after, answer=answer, followup=again and tier == "protocol", **kw
            )

        if res.level == "high":
            return decision("protocol", res.category, "rules")
        if answer == "confirm":
            return decision("protocol", prev_category, "followup")
        score: LearnedScore | None = None
        if stage is not None:
            # a denial is judged on its own; anything else with the seeker turns since the last denial
            ctx = (
                []
                if answer == "deny"
                else [t.text for t in history[self.context_start(history, idx) : idx] if t.speaker == "seeker"]
            )
            try:
                score = stage.score(turn.text, ctx)
            except Exception as e:  # fail closed: whatever broke, the message gets a check-in
                err = f"{type(e).__name__}: {e}"[:200]
                if answer == "deny":  # the seeker just said no to the safety question: no second question
                    return decision("none", "none", "followup", learned_error=err)
                category = res.category if res.level == "ambiguous" else "suicide"
                return decision("check_in", category, "learned", learned_error=err)
        tier: Tier = score.tier if score is not None else "none"  # type: ignore[assignment]
        if answer == "deny":  # the denial ends the exchange unless the learned stage sees protocol-level risk
            if tier == "protocol":
                assert score is not None
                return decision("protocol", score.category, "learned", learned=score)
            return decision("none", "none", "followup", learned=score)
        if score is not None:
            if tier != "none":
                return decision(tier, score.category, "learned", learned=score)
            return decision("none", "none", "none", learned=score)  # an ambiguous hit scored none: logged
        if res.level == "ambiguous":
            return decision("check_in", res.category, "rules")
        return decision("none", "none", "none")

    async def assess(self, history: list[Turn], *, log: bool = True) -> SafetyDecision:
        """All stages on the latest seeker message; logs every decision `SafetyDecision.worth_logging`."""
        if self.learned is not None:  # embedding is CPU work of a few milliseconds: off the event loop
            decision = await asyncio.to_thread(self.decide, history)
        else:
            decision = self.decide(history)
        decision = await self._ask_classifier(decision, history)
        if log and decision.worth_logging:
            last = _last_seeker(history)
            self.log_decision(decision, message=last[1].text if last else "")
        return decision

    async def _ask_classifier(self, decision: SafetyDecision, history: list[Turn]) -> SafetyDecision:
        """The LLM classifier may raise the tier (never lower it); see the class docstring."""
        res = decision.rules
        ask = (
            self.classifier is not None
            and decision.tier != "protocol"
            and decision.answer not in ("confirm", "deny")
            and (
                (res.level == "ambiguous" and self.classify in ("ambiguous", "all"))
                or (res.level == "none" and self.classify == "all")
            )
        )
        if not ask:
            return decision
        assert self.classifier is not None
        last = _last_seeker(history)
        assert last is not None
        idx, turn = last
        try:
            verdict = await self.classifier.classify(turn.text, history[self.context_start(history, idx) : idx])
        except (StructuredOutputError, UserError) as e:
            decision.classifier_error = str(e)[:200]
            if res.level == "ambiguous" and decision.tier == "none":  # fail closed, without a takeover
                decision.tier, decision.category, decision.stage = "check_in", res.category, "rules"
            return decision
        decision.verdict = verdict
        if verdict.risk == "none":
            return decision
        if verdict.confidence == "high":
            decision.tier, decision.category, decision.stage = "protocol", verdict.risk, "classifier"
            decision.followup = decision.after == "protocol"
        elif decision.tier == "none":
            decision.tier, decision.category, decision.stage = "check_in", verdict.risk, "classifier"
        return decision

    # -- acting ---------------------------------------------------------------------------------
    def protocol_reply(self, decision: SafetyDecision, *, locale: str | None = None) -> str:
        return self.protocol.reply(decision.category, locale=locale or self.locale, followup=decision.followup)

    def check_in_question(self, decision: SafetyDecision, *, locale: str | None = None) -> str:
        """The question appended to a normal reply on the ``check_in`` tier (`Protocol.check_in_question`)."""
        category = decision.category if decision.category in Protocol.CATEGORIES else "suicide"
        return self.protocol.check_in_question(locale or self.locale, category)

    def with_check_in(self, text: str, decision: SafetyDecision, *, locale: str | None = None) -> str:
        """A normal reply with the check-in question appended."""
        category = decision.category if decision.category in Protocol.CATEGORIES else "suicide"
        return self.protocol.with_check_in(text, category, locale=locale or self.locale)

    def protocol_turn(self, decision: SafetyDecision, *, locale: str | None = None) -> Turn:
        """The supporter turn of the protocol: fixed text, fixed thought, strategy Question."""
        return Turn(
            speaker="supporter",
            text=self.protocol_reply(decision, locale=locale),
            strategy=PROTOCOL_STRATEGY,
            thought=self.protocol.thought(decision.category, decision.rule),
            risk_reason=f"protocol:{decision.category}",
        )

    def screen(self, text: str) -> tuple[str, RuleHit | None]:
        """(text to send, hit): a supporter reply with means/method content is replaced."""
        hit = self.rules.screen_output(text)
        if hit is None:
            return text, None
        return self.protocol.replacement(self.locale), hit

    def log_decision(self, decision: SafetyDecision, *, message: str, locale: str | None = None) -> None:
        if self.event_log is None:
            return
        event = {"source": self.source, "kind": "seeker_message", **decision.as_dict()}
        entry, region = self.protocol.resources.lookup(locale or self.locale)
        event["locale"] = entry.locale
        if region:
            event["locale_fallback"] = f"no crisis lines on file for region {region}: international list"
        self.event_log.write(event, message=message)

    def log_output(self, hit: RuleHit, *, message: str) -> None:
        if self.event_log is None:
            return
        self.event_log.write(
            {
                "source": self.source,
                "kind": "supporter_output",
                "action": "reply_replaced",
                "stage": "rules",
                "rule": hit.rule,
                "matched": hit.matched,
            },
            message=message,
        )


def label_seeker_turn(turn: Turn, history: list[Turn], layer: SafetyLayer) -> SafetyDecision:
    """Label a seeker turn with the layer's decision (rules, the learned stage when the layer has one, the
    answer to a protocol reply or check-in; no LLM, no log): ``safety_tier``, ``safety_stage``,
    ``safety_score``, and ``risk``/``risk_reason`` as before (set on the protocol tier; ``risk_reason`` is
    the rule, else the stage that decided). ``history`` ends with ``turn``. Synchronous; with a learned
    stage, call it in a thread from async code."""
    decision = layer.decide(history)
    record_decision(turn, decision)
    return decision


def record_decision(turn: Turn, decision: SafetyDecision) -> None:
    """Write a decision onto the seeker turn it is about (see `label_seeker_turn`)."""
    turn.safety_tier = decision.tier
    turn.safety_stage = decision.stage
    turn.safety_score = None if decision.score is None else round(decision.score, 4)
    turn.risk = decision.category if decision.flagged else "none"  # type: ignore[assignment]
    turn.risk_reason = (decision.rule if decision.stage == "rules" else decision.stage) if decision.flagged else None
