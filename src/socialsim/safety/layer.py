"""`SafetyLayer`: the rule stage, the optional LLM stage, the fixed protocol and the event log,
combined. See the package docstring for how the two stages combine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from socialsim.errors import StructuredOutputError, UserError
from socialsim.safety.classifier import LLMClassifier, RiskVerdict
from socialsim.safety.events import SafetyEventLog
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
    stage: Literal["rules", "classifier", "none"]
    rules: RuleResult
    verdict: RiskVerdict | None = None
    classifier_error: str | None = None
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
        return d


def _last_seeker(history: list[Turn]) -> tuple[int, Turn] | None:
    for i in range(len(history) - 1, -1, -1):
        if history[i].speaker == "seeker":
            return i, history[i]
    return None


class SafetyLayer:
    """Checks seeker messages, writes the protocol reply, screens supporter replies, logs events.

    ``classify``: ``ambiguous`` (default) asks the LLM classifier about messages the rules find
    ambiguous; ``all`` also about messages the rules find nothing in; ``off`` never asks (ambiguous
    messages are then logged but not flagged). A ``none`` verdict clears an ambiguous message only
    with a confidence in ``clear_confidence`` (default medium or high).
    """

    def __init__(
        self,
        *,
        rules: RuleStage | None = None,
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
        """The rule stage alone (no LLM, no log): what the simulation labels seeker turns with."""
        last = _last_seeker(history)
        if last is None:
            return SafetyDecision(False, "none", "none", RuleResult("none", "none"))
        idx, turn = last
        prior = self.previous_protocol(history, idx)
        res = self.rules.check(turn.text, after_protocol=prior)
        if res.level == "high":
            return SafetyDecision(True, res.category, "rules", res, followup=res.followup == "affirm")
        return SafetyDecision(False, "none", "none", res)

    async def assess(self, history: list[Turn], *, log: bool = True) -> SafetyDecision:
        """Both stages on the latest seeker message; logs flagged and ambiguous messages."""
        decision = self.assess_rules(history)
        res = decision.rules
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
                if res.level == "ambiguous":
                    decision = SafetyDecision(True, res.category, "rules", res, classifier_error=str(e)[:200])
                else:
                    decision = SafetyDecision(False, "none", "none", res, classifier_error=str(e)[:200])
            else:
                if verdict.risk != "none":
                    decision = SafetyDecision(True, verdict.risk, "classifier", res, verdict=verdict)
                elif res.level == "ambiguous" and verdict.confidence not in self.clear_confidence:
                    # a hesitant "none" does not clear what the rules found ambiguous
                    decision = SafetyDecision(True, res.category, "classifier", res, verdict=verdict)
                else:
                    decision = SafetyDecision(False, "none", "none", res, verdict=verdict)
        if log and (decision.flagged or res.level != "none" or decision.classifier_error):
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
        return self.protocol.output_replacement, hit

    def log_decision(self, decision: SafetyDecision, *, message: str, locale: str | None = None) -> None:
        if self.event_log is None:
            return
        event = {"source": self.source, "kind": "seeker_message", **decision.as_dict()}
        event["locale"] = self.protocol.resources.resolve(locale or self.locale).locale
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
