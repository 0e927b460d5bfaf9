"""`SafetyLayer`: the rule stage, the learned stage, the optional LLM stage, the fixed protocol and the
event log, combined. See the package docstring for how the stages combine."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

from socialsim.errors import StructuredOutputError, UserError
from socialsim.safety.classifier import LLMClassifier, RiskVerdict
from socialsim.safety.events import SafetyEventLog
from socialsim.safety.learned import LearnedScore, LearnedStage
from socialsim.safety.protocol import PROTOCOL_STRATEGY, Protocol
from socialsim.safety.rules import RuleHit, RuleResult, RuleStage, load_rules
from socialsim.schema import Turn

ClassifyScope = Literal["ambiguous", "all", "off"]
CLASSIFY_SCOPES: tuple[str, ...] = ("ambiguous", "all", "off")


@dataclass
class SafetyDecision:
    """What the safety layer decided about the latest seeker message."""

    flagged: bool
    category: str
    """``none``, ``suicide``, ``self_harm`` or ``harm_to_others``."""
    stage: Literal["rules", "learned", "classifier", "none"]
    rules: RuleResult
    verdict: RiskVerdict | None = None
    classifier_error: str | None = None
    learned: LearnedScore | None = None
    learned_error: str | None = None
    """The learned stage failed (the message is then flagged: fail closed)."""
    followup: bool = False
    """The seeker affirmed right after a protocol reply: the protocol's follow-up reply is due."""

    @property
    def rule(self) -> str | None:
        return self.rules.rule

    @property
    def action(self) -> str:
        if self.flagged:
            return "protocol_followup" if self.followup else "protocol"
        if self.rules.level == "ambiguous":
            return "cleared_by_classifier" if self.verdict is not None else "ambiguous_not_checked"
        return "none"

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "flagged": self.flagged,
            "category": self.category,
            "stage": self.stage,
            "action": self.action,
            "rule_level": self.rules.level,
            "rule": self.rule,
        }
        if self.rules.matched:
            d["matched"] = self.rules.matched
        if self.verdict is not None:
            d["verdict"] = self.verdict.model_dump()
        if self.classifier_error:
            d["classifier_error"] = self.classifier_error
        if self.learned is not None:
            d["learned"] = self.learned.as_dict()
        if self.learned_error:
            d["learned_error"] = self.learned_error
        return d


def _last_seeker(history: list[Turn]) -> tuple[int, Turn] | None:
    for i in range(len(history) - 1, -1, -1):
        if history[i].speaker == "seeker":
            return i, history[i]
    return None


class SafetyLayer:
    """Checks seeker messages, writes the protocol reply, screens supporter replies, logs events.

    ``learned``: the learned stage (`LearnedStage`), asked about every message the rules do not
    flag; a score at or above its threshold flags the message, and any failure of it flags the
    message too (fail closed). None: no learned stage.
    ``classify``: ``ambiguous`` (default) asks the LLM classifier about messages the rules find
    ambiguous and the learned stage did not flag; ``all`` also about messages the rules find nothing
    in; ``off`` never asks (ambiguous messages are then logged but not flagged). A ``none`` verdict
    clears an ambiguous message only with a confidence in ``clear_confidence`` (default medium or high).
    """

    def __init__(
        self,
        *,
        rules: RuleStage | None = None,
        learned: LearnedStage | None = None,
        protocol: Protocol | None = None,
        classifier: LLMClassifier | None = None,
        classify: str = "ambiguous",
        event_log: SafetyEventLog | None = None,
        source: str = "api",
        locale: str | None = None,
        clear_confidence: tuple[str, ...] = ("medium", "high"),
    ) -> None:
        if classify not in CLASSIFY_SCOPES:
            raise UserError(f"--classify {classify!r}: use one of {', '.join(CLASSIFY_SCOPES)}")
        self.rules = rules or load_rules()
        self.learned = learned
        self.protocol = protocol or Protocol()
        self.classifier = classifier
        self.classify = classify if classifier is not None else "off"
        self.event_log = event_log
        self.source = source
        self.locale = locale
        self.clear_confidence = clear_confidence

    # -- context --------------------------------------------------------------------------------
    def previous_protocol(self, history: list[Turn], seeker_index: int) -> str | None:
        """The category of the supporter turn just before the seeker's message, if it was a protocol reply."""
        if seeker_index == 0:
            return None
        prev = history[seeker_index - 1]
        if prev.speaker != "supporter":
            return None
        if prev.risk_reason and prev.risk_reason.startswith("protocol:"):
            return prev.risk_reason.split(":", 1)[1]
        found = self.protocol.identify(prev.text)
        return found[0] if found else None

    # -- assessing ------------------------------------------------------------------------------
    def assess_rules(self, history: list[Turn]) -> SafetyDecision:
        """The rule stage alone (no LLM, no log): what the simulation labels seeker turns with. With a
        learned stage, a high hit about the past, someone else or a story counts as ambiguous."""
        last = _last_seeker(history)
        if last is None:
            return SafetyDecision(False, "none", "none", RuleResult("none", "none"))
        idx, turn = last
        prior = self.previous_protocol(history, idx)
        # with a learned stage to judge them, hits about the past, someone else or a story are ambiguous
        res = self.rules.check(turn.text, after_protocol=prior, distance=self.learned is not None)
        if res.level == "high":
            return SafetyDecision(True, res.category, "rules", res, followup=res.followup == "affirm")
        return SafetyDecision(False, "none", "none", res)

    def assess_learned(self, decision: SafetyDecision, history: list[Turn]) -> SafetyDecision:
        """The learned stage on the latest seeker message (and the seeker turns before it), after the
        rules did not flag it. Any failure flags the message (fail closed)."""
        last = _last_seeker(history)
        if self.learned is None or decision.flagged or last is None:
            return decision
        idx, turn = last
        res = decision.rules
        context = [t.text for t in history[:idx] if t.speaker == "seeker"]
        try:
            score = self.learned.score(turn.text, context)
        except Exception as e:  # fail closed: whatever broke, the message gets the protocol
            category = res.category if res.level == "ambiguous" else "suicide"
            return SafetyDecision(True, category, "learned", res, learned_error=f"{type(e).__name__}: {e}"[:200])
        if score.flagged:
            return SafetyDecision(True, score.category, "learned", res, learned=score)
        return SafetyDecision(False, "none", "none", res, learned=score)

    async def assess(self, history: list[Turn], *, log: bool = True) -> SafetyDecision:
        """All stages on the latest seeker message; logs flagged and ambiguous messages."""
        decision = self.assess_rules(history)
        if self.learned is not None and not decision.flagged:
            # embedding is CPU work of a few milliseconds: off the event loop
            decision = await asyncio.to_thread(self.assess_learned, decision, history)
        res = decision.rules
        learned = decision.learned
        ask = not decision.flagged and (
            (res.level == "ambiguous" and self.classify in ("ambiguous", "all"))
            or (res.level == "none" and self.classify == "all")
        )
        if ask:
            assert self.classifier is not None
            last = _last_seeker(history)
            assert last is not None
            idx, turn = last
            try:
                verdict = await self.classifier.classify(turn.text, history[:idx])
            except (StructuredOutputError, UserError) as e:
                # fail closed: an ambiguous message the classifier cannot judge gets the protocol
                err = str(e)[:200]
                if res.level == "ambiguous":
                    decision = SafetyDecision(True, res.category, "rules", res, classifier_error=err, learned=learned)
                else:
                    decision = SafetyDecision(False, "none", "none", res, classifier_error=err, learned=learned)
            else:
                if verdict.risk != "none":
                    decision = SafetyDecision(True, verdict.risk, "classifier", res, verdict=verdict, learned=learned)
                elif res.level == "ambiguous" and verdict.confidence not in self.clear_confidence:
                    # a hesitant "none" does not clear what the rules found ambiguous
                    decision = SafetyDecision(True, res.category, "classifier", res, verdict=verdict, learned=learned)
                else:
                    decision = SafetyDecision(False, "none", "none", res, verdict=verdict, learned=learned)
        if log and (decision.flagged or res.level != "none" or decision.classifier_error or decision.learned_error):
            last = _last_seeker(history)
            self.log_decision(decision, message=last[1].text if last else "")
        return decision

    # -- acting ---------------------------------------------------------------------------------
    def protocol_reply(self, decision: SafetyDecision, *, locale: str | None = None) -> str:
        return self.protocol.reply(decision.category, locale=locale or self.locale, followup=decision.followup)

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
    """Set ``turn.risk``/``risk_reason`` from the rule stage (the simulation's safety label).
    ``history`` ends with ``turn``."""
    decision = layer.assess_rules(history)
    turn.risk = decision.category if decision.flagged else "none"  # type: ignore[assignment]
    turn.risk_reason = decision.rule if decision.flagged else None
    return decision
