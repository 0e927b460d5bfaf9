"""The crisis safety layer: decides a tier for every seeker message (``none``, ``check_in``,
``protocol``), answers with a fixed crisis protocol or appends a fixed check-in question about safety,
and ends the safety exchange when the seeker says they are safe.

Stages
------
1. **Rules** (`RuleStage`, lexicon in ``data/lexicon.json``; its ``doc`` field explains the pattern
   language). Text is normalised (case, apostrophes, repeated letters, typos and near-misses of key
   words), patterns are matched, and a hit is dropped when its trigger word lies inside an idiom
   ("this exam is killing me", "dead tired", "I could kill for a coffee", "cutting carbs") or, for
   negatable rules, when a negation cue stands just before it ("I would never hurt myself") and no
   doubt cue is in the same sentence ("I'm not sure I won't hurt myself" stays a hit). Each rule is
   ``high`` (explicit intent, a plan, means at hand, timing, a recent attempt, harm to others) or
   ``ambiguous`` (risk signals without stated intent: hopelessness, feeling a burden, not wanting to
   wake up, ambiguous talk of pills, heights or goodbyes). With the learned stage on, a high hit in a
   sentence about the past, someone else or a story (``distance_cues``: "I used to self-harm", "my
   friend told me she is suicidal") counts as ambiguous.
2. **Learned stage** (`LearnedStage`, ``learned.py``): a model on all-MiniLM-L6-v2 embeddings of the
   message and of the message with the previous seeker turns, plus the rule signals, with two thresholds
   (check-in, protocol) in ``data/learned_model.json``; its ``tier`` is ``none``, ``check_in`` or
   ``protocol``.
3. **LLM classifier** (`LLMClassifier`, optional): a `RiskVerdict` (risk, confidence, reason) through
   `socialsim.llm.structured.generate_structured`, prompted by ``templates/risk_classifier*.j2``.
4. **The answer to a safety question** (`FollowupReader`, patterns in ``data/followup.json``): right
   after a protocol reply or a check-in, the seeker's message is read as ``confirm``, ``deny`` or ``other``.

How they combine (`SafetyLayer.assess`)
---------------------------------------
- **protocol** (the fixed protocol replaces the reply): a ``high`` rule hit (nothing later is asked and
  nothing can lower it); or the learned stage's tier is ``protocol``; or the seeker confirms right after
  a check-in or a protocol reply ("yes", "kind of", "I still want to", "I'm not safe", "I can't promise
  that": a hedged yes counts as yes, a negated safety statement is a confirm). Right after a protocol
  reply, the protocol's follow-up reply is given instead of the first one again.
- **check_in** (the supporter answers as usual and the fixed check-in question is appended): the
  learned stage's tier is ``check_in``; or, without a learned stage, an ``ambiguous`` rule hit. With a
  learned stage, an ambiguous hit it scores ``none`` stays ``none`` (logged): the model already sees
  the rule signals. Any failure of the learned stage gives a check-in (fail closed, without taking over
  the chat).
- The LLM classifier (``classify="ambiguous"``: messages the rules find ambiguous; ``"all"``: every
  message; ``"off"``) only raises: a risk verdict with high confidence gives the protocol, any other risk
  verdict a check-in; when it fails on an ambiguous message, the message gets a check-in.
- **No loop.** A denial right after a check-in or a protocol reply ("no", "I'm safe", "no, I'm okay
  now", "not really, I just meant I'm tired") ends the exchange: tier ``none`` and a normal reply, unless
  the same message has a ``high`` rule hit or the learned stage's ``protocol`` tier (scored on the denial
  alone). The seeker turns up to a denial no longer count as the learned stage's context. Anything else
  ("I have an exam tomorrow", "what do you mean?") goes through the stages as a new message. A previous
  protocol reply or check-in is recognised from the supporter turn's ``risk_reason``
  (``protocol:<category>``, ``check_in:<category>``) or, for clients that do not keep socialsim's
  fields, from its text (`Protocol.identify`).
- **none** otherwise.

Every decision records its ``tier``, the ``stage`` that decided (``rules``, ``learned``,
``classifier``, ``followup`` or ``none``) and the learned ``score`` (`SafetyDecision`).

The replies
-----------
On ``protocol`` the supporter's reply is the fixed protocol text (`Protocol`, ``data/protocol.json``),
never model output: it takes the message seriously, asks directly about safety, gives crisis resources
for the locale (`CrisisResources`, ``data/resources.json`` with a generic fallback; pass your own file; a
region without lines of its own, such as de-AT, gets the international list and the reply says so), in
the locale's language where ``data/protocol.json`` has it (English, German, French; else English with a
note), names no means or method, and invites the seeker to keep talking. Its strategy is recorded as
``Question`` with a fixed `SupporterThought`. On ``check_in`` the normal reply gets the fixed check-in
question (`Protocol.check_in_question`, same file and languages), modelled on the first two questions of
the Columbia screener (wished you were dead or could go to sleep and not wake up; thoughts of killing
yourself): asking directly does not raise risk. Every normal supporter reply is screened for means or
method content and replaced when it has any. Every protocol and check-in decision, every ambiguous
message, every denial that ended an exchange and every replaced reply is written to the JSONL event log
(`SafetyEventLog`).

It is a safety net for a research tool, not a clinical instrument.
"""

from socialsim.safety.classifier import LLMClassifier, RiskVerdict
from socialsim.safety.events import SafetyEventLog, default_event_log_path
from socialsim.safety.followup import ANSWERS, FollowupReader, load_followup
from socialsim.safety.layer import (
    CLASSIFY_SCOPES,
    TIERS,
    SafetyDecision,
    SafetyLayer,
    Tier,
    label_seeker_turn,
    record_decision,
)
from socialsim.safety.learned import LearnedScore, LearnedStage
from socialsim.safety.protocol import PROTOCOL_STRATEGY, CrisisResources, Protocol
from socialsim.safety.rules import RuleHit, RuleResult, RuleStage, load_rules

__all__ = [
    "ANSWERS",
    "CLASSIFY_SCOPES",
    "PROTOCOL_STRATEGY",
    "CrisisResources",
    "FollowupReader",
    "LLMClassifier",
    "LearnedScore",
    "LearnedStage",
    "Protocol",
    "RiskVerdict",
    "RuleHit",
    "RuleResult",
    "RuleStage",
    "SafetyDecision",
    "SafetyEventLog",
    "SafetyLayer",
    "TIERS",
    "Tier",
    "default_event_log_path",
    "label_seeker_turn",
    "load_followup",
    "load_rules",
    "record_decision",
]
