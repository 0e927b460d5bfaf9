"""What a run was made with: software versions and, for HTTP backends, the server's own model entry.

Recorded in run manifests so a corpus can be traced to the code and the model behind it. Nothing here
may fail a run: a package that is not installed is ``None``, a server that does not answer
``GET /models`` gives ``{"error": ...}``.
"""

from __future__ import annotations

import json
import os
import platform
import urllib.error
import urllib.request
from importlib import metadata
from typing import Any

from socialsim import __version__

#: Packages recorded for every backend, and the extra ones per backend kind.
_ALWAYS = ("pydantic", "openai", "aiohttp")
_PER_KIND = {
    "local": ("llama-cpp-python",),
    "hf": ("transformers", "torch"),
    "openai": (),
}


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def software_versions(backend_kind: str | None = None, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """socialsim, Python and the packages the backend runs on (``llama-cpp-python`` for the embedded
    model, ``transformers``/``torch`` for ``hf``), plus `extra` packages."""
    names = _ALWAYS + ("llama-cpp-python",) + _PER_KIND.get(backend_kind or "", ()) + extra
    out: dict[str, Any] = {"socialsim": __version__, "python": platform.python_version()}
    for name in dict.fromkeys(names):
        out[name] = package_version(name)
    return out


def server_model_entry(
    base_url: str, model: str, *, api_key_env: str = "OPENAI_API_KEY", timeout_s: float = 5.0
) -> dict[str, Any]:
    """The entry for `model` in the server's ``GET {base_url}/models`` list (the whole list's ids when
    the model is not listed), or ``{"error": ...}`` when the server does not answer."""
    url = base_url.rstrip("/") + "/models"
    req = urllib.request.Request(
        url, headers={"Authorization": f"Bearer {os.environ.get(api_key_env) or 'sk-no-key-needed'}"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 - the user's own server URL
            data = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError) as e:
        return {"url": url, "error": f"{e.__class__.__name__}: {e}"[:200]}
    entries = data.get("data") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return {"url": url, "error": "no 'data' list in the answer"}
    for entry in entries:
        if isinstance(entry, dict) and entry.get("id") == model:
            return {"url": url, "entry": entry}
    return {"url": url, "entry": None, "listed": [e.get("id") for e in entries if isinstance(e, dict)][:20]}


def backend_environment(
    kind: str, *, base_url: str | None = None, model: str | None = None, api_key_env: str = "OPENAI_API_KEY"
) -> dict[str, Any]:
    """Software versions plus, for ``openai`` backends, the server's model entry."""
    env: dict[str, Any] = {"software": software_versions(kind)}
    if kind == "openai" and base_url and model:
        env["server_model"] = server_model_entry(base_url, model, api_key_env=api_key_env)
    return env
