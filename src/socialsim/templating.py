"""One way to build the Jinja2 environment every stage renders its prompt files with."""

from __future__ import annotations

from pathlib import Path

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
