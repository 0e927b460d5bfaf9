"""The supporter that ``serve`` and ``chat`` answer with: an `LLM`, the crisis safety layer in front
of it, and the `SupporterPipeline` over both, built from a backend config and `SupporterOptions`.
Errors name the parameter (`socialsim.errors.ParamError`); the command line maps it to its option."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from socialsim.errors import ParamError
from socialsim.schema import BackendConfig, ExecutionConfig

if TYPE_CHECKING:
    from socialsim.safety.build import LayerOptions


@dataclass(frozen=True)
class SupporterOptions:
    """How the served supporter replies and screens messages (everything but the backend)."""

    mode: str = "pipeline"
    """'pipeline' (a thought, then the reply) or 'plain' (the model replies directly, SFT chat format)."""
    temperature: float = 0.7
    reply_max_tokens: int = 120
    seed: int = 0
    locale: str | None = None
    """Locale of the crisis resources (e.g. en-GB); None: the generic ones."""
    resources: Path | None = None
    """A crisis resources JSON of one's own."""
    classify: str | None = None
    """When the LLM risk classifier runs: 'ambiguous', 'all' or 'off'; None: the default of every command
    (`socialsim.safety.build.DEFAULT_CLASSIFY`)."""
    learned: bool | None = None
    """The learned safety stage: None on where installed (else the rules alone, with a note), True
    required, False off (`socialsim.safety.build.LayerOptions`)."""
    check_in_threshold: float | None = None
    protocol_threshold: float | None = None
    safety_log: Path | None = None
    log_messages: bool = False

    def check(self) -> None:
        """Raise a `ParamError` for the first bad value (cheap checks, before anything is loaded)."""
        from socialsim.serve.pipeline import SUPPORTER_MODES

        if self.mode not in SUPPORTER_MODES:
            raise ParamError("mode", f"{self.mode!r}: use one of {', '.join(SUPPORTER_MODES)}")
        self.layer_options().check()
        if not 0 <= self.temperature <= 2:
            raise ParamError("temperature", f"must be between 0 and 2, got {self.temperature:g}")
        if not 1 <= self.reply_max_tokens <= 2048:
            raise ParamError("reply_max_tokens", f"must be between 1 and 2048, got {self.reply_max_tokens}")
        if self.locale is not None and not (self.locale.strip() and len(self.locale) <= 35):
            raise ParamError("locale", f"{self.locale!r}: give a tag such as en-GB")
        if self.resources is not None and not Path(self.resources).is_file():
            raise ParamError("resources", f"{self.resources}: file not found")

    def layer_options(self) -> LayerOptions:
        """The safety layer's options (what `socialsim.safety.build` builds the layer from)."""
        from socialsim.safety.build import DEFAULT_CLASSIFY, LayerOptions

        return LayerOptions(
            learned=self.learned,
            check_in_threshold=self.check_in_threshold,
            protocol_threshold=self.protocol_threshold,
            classify=self.classify or DEFAULT_CLASSIFY,
        )


def check_upstream(base_url: str, api_key_env: str, timeout: float = 5.0) -> None:
    """Fail fast (`ParamError` on ``base_url``) when the upstream server cannot be reached or refuses the key."""
    import socket
    import urllib.error
    import urllib.request

    url = base_url.rstrip("/") + "/models"
    req = urllib.request.Request(url, method="GET")
    key = os.environ.get(api_key_env)
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=timeout):
            return
    except urllib.error.HTTPError as e:
        if e.code in (401, 403):
            raise ParamError(
                "base_url", f"{base_url} refused the API key (HTTP {e.code}); check the variable named by api_key_env"
            ) from None
        return  # it answered: reachable (some servers have no /models)
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, socket.timeout | TimeoutError):
            reason = f"no answer within {timeout:g}s"
        raise ParamError("base_url", f"cannot reach {base_url} ({reason}); check that the server is running") from None


def build_supporter(
    source: str, backend: BackendConfig, ex: ExecutionConfig, options: SupporterOptions | None = None
) -> tuple[Any, Any]:
    """(LLM, SupporterPipeline) for ``source`` ('serve' or 'chat', recorded in the safety log). The
    LLM has no call cache: every conversation is answered fresh. Cheap option checks come first, then
    the learned stage's model file is read, then the upstream check, then the embedding model is loaded
    and the safety event log opened. The safety layer is built as ``safety-eval`` builds it
    (`socialsim.safety.build`); where the learned stage is not installed, one note says the layer is
    the rules alone."""
    from socialsim.llm.factory import build_llm
    from socialsim.safety import CrisisResources, Protocol, SafetyEventLog, default_event_log_path
    from socialsim.safety.build import build_layer, load_learned
    from socialsim.serve.pipeline import SupporterPipeline

    o = options or SupporterOptions()
    o.check()
    res = CrisisResources(o.resources)
    layer_options = o.layer_options()
    stage = load_learned(layer_options)
    llm = build_llm(backend, ex.model_copy(update={"cache": False}))
    if backend.kind == "openai":
        check_upstream(backend.base_url or "", ex.api_key_env, timeout=min(ex.timeout_s, 10.0))
    if stage is not None:
        stage.warm()  # load the embedding model now, not on the first message
    safety = build_layer(
        layer_options,
        learned=stage,
        llm=llm,
        seed=o.seed,
        protocol=Protocol(res),
        event_log=SafetyEventLog(o.safety_log or default_event_log_path(), log_text=o.log_messages),
        source=source,
        locale=o.locale,
    )
    for note in safety.protocol.fallbacks(o.locale):
        print(f"note: locale {o.locale}: {note}", file=sys.stderr, flush=True)
    pipeline = SupporterPipeline(
        llm, safety, seed=o.seed, temperature=o.temperature, reply_max_tokens=o.reply_max_tokens, mode=o.mode
    )
    return llm, pipeline
