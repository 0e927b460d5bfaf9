"""Crisis resources by locale and the protocol's fixed replies.

The replies are fixed templates (``data/protocol.json``), never model output: they take what was
said seriously, ask directly about safety, give the locale's crisis resources, name no means or
method, and invite the seeker to keep talking. Resources come from ``data/resources.json`` or a
file of the same shape passed by the user.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources as ilr
from pathlib import Path
from typing import Any

from socialsim.errors import UserError
from socialsim.schema import Strategy, SupporterThought

PROTOCOL_STRATEGY = Strategy.QUESTION
"""The ESConv label recorded for a protocol reply: its core act is the direct question about safety."""

_CATEGORY_WORDS = {
    "suicide": "suicide",
    "self_harm": "self-harm",
    "harm_to_others": "harming someone else",
}


def _data_path(name: str) -> Path:
    return Path(str(ilr.files("socialsim.safety").joinpath(f"data/{name}")))


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: {what} file not found") from None
    except ValueError as e:
        raise UserError(f"{path}: {what} file is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: {what} file must hold a JSON object")
    return data


@dataclass(frozen=True)
class Resource:
    name: str
    contact: str
    hours: str | None = None
    url: str | None = None

    def render(self) -> str:
        text = f"{self.name}: {self.contact}"
        return f"{text} ({self.hours})" if self.hours else text


@dataclass(frozen=True)
class LocaleResources:
    locale: str
    name: str
    emergency: str
    resources: tuple[Resource, ...]
    protocol: dict[str, Any] | None = None


class CrisisResources:
    """Crisis lines by locale, with a generic fallback. ``path``: a file of the same shape as the
    built-in ``data/resources.json`` (or None for the built-in one)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else _data_path("resources.json")
        data = _read_json(self.path, "crisis resources")
        raw = data.get("locales")
        if not isinstance(raw, dict) or not raw:
            raise UserError(f"{self.path}: crisis resources need a non-empty 'locales' object")
        self.locales: dict[str, LocaleResources] = {}
        for tag, entry in raw.items():
            try:
                res = tuple(Resource(r["name"], r["contact"], r.get("hours"), r.get("url")) for r in entry["resources"])
                if not res:
                    raise KeyError("resources")
                self.locales[tag.lower()] = LocaleResources(
                    tag, entry.get("name", tag), entry["emergency"], res, entry.get("protocol")
                )
            except (KeyError, TypeError) as e:
                raise UserError(
                    f"{self.path}: locale {tag!r} needs 'emergency' and a non-empty 'resources' list "
                    f"of {{name, contact}} (problem with {e})"
                ) from None
        self.aliases = {k.lower(): v.lower() for k, v in (data.get("aliases") or {}).items()}
        self.default = str(data.get("default", "generic")).lower()
        if self.default not in self.locales:
            raise UserError(f"{self.path}: default locale {self.default!r} is not among its locales")

    def resolve(self, locale: str | None) -> LocaleResources:
        """Exact tag, alias, region, sole language match, then the default (generic) entry."""
        if not locale:
            return self.locales[self.default]
        tag = locale.strip().replace("_", "-").lower()
        tag = self.aliases.get(tag, tag)
        if tag in self.locales:
            return self.locales[tag]
        parts = tag.split("-")
        if len(parts) > 1:
            region = parts[-1]
            if region in self.aliases and self.aliases[region] in self.locales:
                return self.locales[self.aliases[region]]
            same_region = [v for k, v in self.locales.items() if k.endswith("-" + region)]
            if len(same_region) == 1:
                return same_region[0]
        same_lang = [v for k, v in self.locales.items() if k.split("-")[0] == parts[0]]
        if len(same_lang) == 1:
            return same_lang[0]
        return self.locales[self.default]


class Protocol:
    """Renders the fixed protocol replies for a category and locale, and recognises them in history."""

    CATEGORIES = ("suicide", "self_harm", "harm_to_others")

    def __init__(self, resources: CrisisResources | None = None, texts_path: str | Path | None = None) -> None:
        self.resources = resources or CrisisResources()
        path = Path(texts_path) if texts_path else _data_path("protocol.json")
        data = _read_json(path, "protocol texts")
        try:
            self.texts = {c: {"first": data[c]["first"], "followup": data[c]["followup"]} for c in self.CATEGORIES}
            self.output_replacement: str = data["output_replacement"]
        except (KeyError, TypeError) as e:
            raise UserError(f"{path}: protocol texts need 'first' and 'followup' for {e}") from None
        self._openings: list[tuple[str, str, str]] = []
        for texts in [self.texts] + [lr.protocol for lr in self.resources.locales.values() if lr.protocol]:
            for cat in self.CATEGORIES:
                for variant in ("first", "followup"):
                    t = (texts.get(cat) or {}).get(variant)
                    if t:
                        self._openings.append((t.split("{", 1)[0].strip(), cat, variant))

    def reply(self, category: str, *, locale: str | None = None, followup: bool = False) -> str:
        if category not in self.CATEGORIES:
            raise ValueError(f"no protocol for risk category {category!r}")
        lr = self.resources.resolve(locale)
        texts = self.texts
        if lr.protocol and category in lr.protocol:
            texts = {**self.texts, category: {**self.texts[category], **lr.protocol[category]}}
        template = texts[category]["followup" if followup else "first"]
        return template.format(
            resources="; ".join(r.render() for r in lr.resources),
            primary=lr.resources[0].render(),
            emergency=lr.emergency,
        )

    def identify(self, text: str) -> tuple[str, str] | None:
        """(category, 'first'|'followup') when ``text`` is a protocol reply, else None."""
        t = text.strip()
        for opening, cat, variant in self._openings:
            if opening and t.startswith(opening):
                return cat, variant
        return None

    @staticmethod
    def thought(category: str, rule: str | None) -> SupporterThought:
        """The fixed thought recorded with a protocol reply (so every supporter turn keeps one)."""
        what = _CATEGORY_WORDS.get(category, category)
        why = f" (safety rule {rule})" if rule else ""
        return SupporterThought(
            emotion="distress",
            intensity=5,
            cause=f"The seeker's message signals a risk of {what}{why}."[:300],
            need="To be taken seriously, asked directly about safety, and connected with crisis support now.",
            strategy=PROTOCOL_STRATEGY,
            rationale="Crisis safety protocol: a fixed reply that asks directly about safety and gives resources.",
        )
