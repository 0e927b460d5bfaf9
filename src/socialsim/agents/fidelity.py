"""Seeker fidelity: does a seeker line stay inside the persona, and only inside the layers opened so far?

- *leak*: the line says the content of a layer not yet opened: its all-MiniLM-L6-v2 cosine similarity to an
  unopened layer is at least `LEAK_THRESHOLD` and higher than to everything it may say (situation and
  opened layers);
- *drift*: the line is far from the persona: its similarity to the situation and every opened layer stays
  below `DRIFT_THRESHOLD` (lines under `MIN_WORDS` words and goodbyes are not judged).

Calibration (default persona bank, 127 personas, embeddings of whole layer texts; percentiles 50/95/99):
an opened layer against a still-closed one (what an honest seeker line is, e.g. the surface vs the core)
scores 0.22/0.40/0.54; the first clause of the core against the core (a seeker quoting its core worry)
0.87 median, 0.66 at the 25th percentile, 0.44 at the 5th. `LEAK_THRESHOLD` 0.6 sits above every honest
pair's 99th percentile and flags about 80 % of core quotes. For drift, another persona's surface against
this persona's situation and surface scores 0.19 median (0.35 at the 95th): `DRIFT_THRESHOLD` 0.2 flags a
line that is no closer to its own persona than a random other persona's story is. Drift is the coarser
check of the two (short, generic lines such as "I just feel stuck" score low on anything).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from socialsim.schema import Persona

LEAK_THRESHOLD = 0.6
DRIFT_THRESHOLD = 0.2
MIN_WORDS = 5


@dataclass
class FidelityCheck:
    """Embeds a persona's situation and layers once; `check` judges one seeker line at a layer."""

    persona: Persona
    leak_threshold: float = LEAK_THRESHOLD
    drift_threshold: float = DRIFT_THRESHOLD
    _vectors: Any = field(default=None, repr=False)

    def vectors(self) -> Any:
        if self._vectors is None:
            from socialsim.embeddings import embed

            d = self.persona.disclosure
            self._vectors = embed([self.persona.situation, d.surface, d.context, d.core])
        return self._vectors

    def check(self, text: str, layer: int, *, goodbye: bool = False) -> dict[str, Any]:
        """``{"leak", "drift", "leak_sim", "persona_sim"}`` for ``text`` said at ``layer``."""
        from socialsim.embeddings import embed

        v = embed([text])[0]
        sims = self.vectors() @ v  # situation, surface, context, core
        allowed = float(max(sims[0], *sims[1 : layer + 2]))
        closed = [float(s) for s in sims[layer + 2 :]]
        leak_sim = max(closed, default=0.0)
        judged = not goodbye and len(text.split()) >= MIN_WORDS
        return {
            "leak": bool(closed) and leak_sim >= self.leak_threshold and leak_sim > allowed,
            "drift": judged and allowed < self.drift_threshold,
            "leak_sim": round(leak_sim, 3),
            "persona_sim": round(allowed, 3),
        }
