"""The crisis safety layer: detects risk of suicide, self-harm or harm to others in seeker messages
and answers with a fixed crisis protocol.

Three stages
------------
1. **Rules** (`RuleStage`, lexicon in ``data/lexicon.json``; its ``doc`` field explains the pattern
   language). Text is normalised (case, apostrophes, repeated letters, typos and near-misses of key
   words), patterns are matched, and a hit is dropped when its trigger word lies inside an idiom
   ("this exam is killing me", "dead tired", "I could kill for a coffee", "cutting carbs") or, for
   negatable rules, when a negation cue stands just before it ("I would never hurt myself") and no
   doubt cue is in the same sentence ("I'm not sure I won't hurt myself" stays a hit). Each rule is
   ``high`` or ``ambiguous``. With the learned stage on, a high hit in a sentence about the past,
   someone else or a story (``distance_cues``: "I used to self-harm", "my friend told me she is
   suicidal") counts as ambiguous.
2. **Learned stage** (`LearnedStage`, ``learned.py``): an RBF SVM (flag) and a logistic regression
   (category) on all-MiniLM-L6-v2 embeddings of the message and of the message with the previous
   seeker turns plus four rule signals, in ``data/learned_model.json`` built by
   ``python -m socialsim.safety.learned_build`` from the labelled sets in ``data/labelled/``;
   measured on the test set ``data/labelled/heldout5.jsonl`` (`measure`).
3. **LLM classifier** (`LLMClassifier`): a `RiskVerdict` (risk, confidence, reason) through
   `socialsim.llm.structured.generate_structured`, prompted by ``templates/risk_classifier*.j2``.

How they combine (fail closed)
------------------------------
- A ``high`` rule hit flags the message at once; nothing later is asked and nothing can lower it.
- Otherwise the learned stage scores the message: a score at or above its threshold flags it with the
  stage's category; any failure of the stage (model file, embedding model, shapes) flags it too.
- An ``ambiguous`` hit the learned stage did not flag goes to the LLM classifier
  (``classify="ambiguous"``, the default): a verdict other than ``none`` flags the message with the
  verdict's category; ``none`` with medium or high confidence clears it, ``none`` with low
  confidence does not. If the classifier fails (unparseable output, backend down) the message is
  flagged anyway (fail closed).
- With ``classify="all"`` the classifier also reads messages the rules found nothing in, and may
  raise them; with ``classify="off"`` (or no classifier) ambiguous messages are logged, not flagged.
- Right after a protocol reply, a short affirmative answer ("yes", "kind of", "idk") keeps the same
  category flagged and gets the protocol's follow-up reply; a denial or anything else goes through the
  stages as usual.

When flagged
------------
The supporter's reply is the fixed protocol text (`Protocol`, ``data/protocol.json``), never model
output: it takes the message seriously, asks directly about safety, gives crisis resources for the
locale (`CrisisResources`, ``data/resources.json`` with a generic fallback; pass your own file; a
region without lines of its own, such as de-AT, gets the international list and the reply says so),
in the locale's language where ``data/protocol.json`` has it (English, German, French; else English
with a note),
names no means or method, and invites the seeker to keep talking. Its strategy is recorded as
``Question`` with a fixed `SupporterThought`. Every normal supporter reply is screened for means or
method content and replaced when it has any. Everything flagged, every ambiguous message and every
replaced reply is written to the JSONL event log (`SafetyEventLog`).

Measured on the checked-in probe sets (``tests/data/safety_*.jsonl``), the rule stage routes every
crisis probe to the protocol and flags a small share of the benign ones; on held-out messages written
after the lexicon it misses some crisis messages (see ``tests/test_safety_rules.py``). It is a safety
net for a research tool, not a clinical instrument.
"""

from socialsim.safety.classifier import LLMClassifier, RiskVerdict
from socialsim.safety.events import SafetyEventLog, default_event_log_path
from socialsim.safety.layer import CLASSIFY_SCOPES, SafetyDecision, SafetyLayer, label_seeker_turn
from socialsim.safety.learned import LearnedScore, LearnedStage
from socialsim.safety.protocol import PROTOCOL_STRATEGY, CrisisResources, Protocol
from socialsim.safety.rules import RuleHit, RuleResult, RuleStage, load_rules

__all__ = [
    "CLASSIFY_SCOPES",
    "PROTOCOL_STRATEGY",
    "CrisisResources",
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
    "default_event_log_path",
    "label_seeker_turn",
    "load_rules",
]
