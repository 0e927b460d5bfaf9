"""Seeker fidelity: does a seeker line stay inside the persona, and only inside the layers opened so far?

The persona's story is every field of `socialsim.agents.seeker.LAYER_FIELDS`, each with the layer it opens at:
the surface at 0; the situation, the context and the coping already tried at 1; the core worry, what the seeker
hopes for and its risk note at 2 (list fields one item at a time).

- *leak*: the line says a field of a layer not yet opened: its all-MiniLM-L6-v2 cosine similarity to such a
  field is at least `LEAK_THRESHOLD` and higher than to every field it may say (the layers opened so far);
- *drift*: the line is far from the persona: its similarity to every field of its story, opened or not, stays
  below `DRIFT_THRESHOLD` (lines under `MIN_WORDS` words and goodbyes are not judged).

Calibration (default persona bank, 127 personas, embeddings of whole layer texts; percentiles 50/95/99):
an opened layer against a still-closed one (what an honest seeker line is, e.g. the surface vs the core)
scores 0.22/0.40/0.54; the first clause of the core against the core (a seeker quoting its core worry)
0.87 median, 0.66 at the 25th percentile, 0.44 at the 5th. `LEAK_THRESHOLD` 0.6 sits above every honest
pair's 99th percentile and flags about 80 % of core quotes. For drift, another persona's surface against
this persona's situation and surface scores 0.19 median (0.35 at the 95th): `DRIFT_THRESHOLD` 0.2 flags a
line that is no closer to its own persona than a random other persona's story is. Drift is the coarser
check of the two (short, generic lines such as "I just feel stuck" score low on anything). (The calibration
above predates #26, when the situation was allowed at every layer and the coping, hopes and risk were not
checked; `socialsim.agents.seeker.LAYER_FIELDS` now opens the situation with the context.)
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

    _layers: list[int] = field(default_factory=list, repr=False)

    def texts(self) -> list[tuple[int, str, str]]:
        """(layer, field, text) of every field of the persona's story (`socialsim.agents.seeker.card_texts`)."""
        from socialsim.agents.seeker import LAYER_FIELDS, card_texts

        layer_of = {name: i for i, names in LAYER_FIELDS.items() for name in names}
        return [(layer_of[name], name, text) for name, text in card_texts(self.persona)]

    def vectors(self) -> Any:
        if self._vectors is None:
            from socialsim.embeddings import embed

            texts = self.texts()
            self._layers = [t[0] for t in texts]
            self._vectors = embed([t[2] for t in texts])
        return self._vectors

    def check(self, text: str, layer: int, *, goodbye: bool = False) -> dict[str, Any]:
        """``{"leak", "drift", "leak_sim", "persona_sim", "allowed_sim"}`` for ``text`` said at ``layer``:
        ``leak_sim`` the closest field of a closed layer, ``allowed_sim`` the closest opened field,
        ``persona_sim`` the closest field of the whole story (drift)."""
        from socialsim.embeddings import embed

        v = embed([text])[0]
        sims = [float(s) for s in self.vectors() @ v]
        allowed = max((s for s, i in zip(sims, self._layers, strict=True) if i <= layer), default=0.0)
        closed = [s for s, i in zip(sims, self._layers, strict=True) if i > layer]
        leak_sim = max(closed, default=0.0)
        persona = max(sims, default=0.0)
        judged = not goodbye and len(text.split()) >= MIN_WORDS
        return {
            "leak": bool(closed) and leak_sim >= self.leak_threshold and leak_sim > allowed,
            "drift": judged and persona < self.drift_threshold,
            "leak_sim": round(leak_sim, 3),
            "allowed_sim": round(allowed, 3),
            "persona_sim": round(persona, 3),
        }
