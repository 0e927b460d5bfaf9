"""One way to build the Jinja2 environment every stage renders its prompt files with, and the one
prompt-set class over it."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2


def make_env(package: str, override_dir: str | Path | None = None, folder: str = "templates") -> jinja2.Environment:
    """A strict Jinja2 environment over ``package``'s template folder. Files in ``override_dir`` (if
    given) replace the built-in ones by name, so a user can change one prompt without copying all."""
    loaders: list[jinja2.BaseLoader] = []
    if override_dir is not None:
        loaders.append(jinja2.FileSystemLoader(str(override_dir)))
    loaders.append(jinja2.PackageLoader(package, folder))
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        auto_reload=False,  # templates do not change during a run: no stat() of the file per render
    )


class PromptSet:
    """A stage's prompt files: a strict environment over ``package``'s templates (`make_env`), one
    `render`, and a `digest` of the named files' text (part of a run's config, so an edited prompt
    invalidates a resume). Files in `override_dir` replace the built-in ones by name."""

    def __init__(self, package: str, names: Sequence[str] = (), override_dir: str | Path | None = None) -> None:
        self.env = make_env(package, override_dir)
        self.names = tuple(names)
        self._templates: dict[str, jinja2.Template] = {}  # loaded once: no cache lookup per render

    def source(self, name: str) -> str:
        """The text of one template file (the override's, if there is one)."""
        src, _, _ = self.env.loader.get_source(self.env, name)  # type: ignore[union-attr]
        return src

    def template(self, name: str) -> jinja2.Template:
        """The compiled template ``name`` (loaded on first use, then kept)."""
        t = self._templates.get(name)
        if t is None:
            t = self._templates[name] = self.env.get_template(name)
            # a plain dict of the (unchanging) environment globals, not jinja's ChainMap over them:
            # every render copies them into its context, 4 us from a dict instead of 16 us
            t.globals = dict(t.globals)
        return t

    def render(self, name: str, **ctx: Any) -> str:
        return self.template(name).render(**ctx).strip()

    def compile_all(self) -> None:
        """Compile every named template now (before an event loop starts, not at each first use)."""
        for name in self.names:
            if name.endswith((".j2", ".txt")):
                self.template(name)

    def digest(self) -> str:
        """A hash of every named template's text (16 hex digits)."""
        h = hashlib.sha256()
        for name in self.names:
            h.update(name.encode() + b"\0" + self.source(name).encode())
        return h.hexdigest()[:16]
