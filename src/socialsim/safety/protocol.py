"""Crisis resources by locale and the protocol's fixed replies.

The replies are fixed templates (``data/protocol.json``), never model output: they take what was
said seriously, ask directly about safety, give the locale's crisis resources, name no means or
method, and invite the seeker to keep talking. The same file holds the check-in question appended to a
normal reply on the ``check_in`` tier (modelled on the Columbia screener's first two questions).
Resources come from ``data/resources.json`` or a file of the same shape passed by the user.
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
    i18n: dict[str, tuple[str, tuple[Resource, ...]]] | None = None
    """Per language: (emergency, resources) in that language."""

    def contacts(self, language: str) -> tuple[str, tuple[Resource, ...]]:
        """(emergency, resources) as said in ``language`` (the entry's own wording if it has none)."""
        if self.i18n and language in self.i18n:
            return self.i18n[language]
        return self.emergency, self.resources


def _resources(raw: list[dict[str, Any]]) -> tuple[Resource, ...]:
    res = tuple(Resource(r["name"], r["contact"], r.get("hours"), r.get("url")) for r in raw)
    if not res:
        raise KeyError("resources")
    return res


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
                res = _resources(entry["resources"])
                i18n = {
                    lang.lower(): (tr["emergency"], _resources(tr["resources"]))
                    for lang, tr in (entry.get("i18n") or {}).items()
                }
                self.locales[tag.lower()] = LocaleResources(
                    tag, entry.get("name", tag), entry["emergency"], res, entry.get("protocol"), i18n
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
        """The entry whose crisis lines a seeker with ``locale`` gets (see `lookup`)."""
        return self.lookup(locale)[0]

    def lookup(self, locale: str | None) -> tuple[LocaleResources, str | None]:
        """(entry, unknown region): exact tag or alias, then the region alone (``es-US`` -> en-US: the
        numbers belong to the country), then a bare language tag by its only entry (``de`` -> de-DE),
        then the default (international) entry. A tag whose region has no entry of its own (``de-AT``,
        ``fr-CH``) gets the default entry, never another country's numbers; the second item then names
        that region (upper case) so the reply can say so."""
        if not locale or not locale.strip():
            return self.locales[self.default], None
        tag = locale.strip().replace("_", "-").lower()
        tag = self.aliases.get(tag, tag)
        if tag in self.locales:
            return self.locales[tag], None
        parts = tag.split("-")
        if len(parts) > 1:
            region = parts[-1]
            if region in self.aliases and self.aliases[region] in self.locales:
                return self.locales[self.aliases[region]], None
            same_region = [v for k, v in self.locales.items() if k.endswith("-" + region)]
            if len(same_region) == 1:
                return same_region[0], None
            return self.locales[self.default], region.upper()
        same_lang = [v for k, v in self.locales.items() if k.split("-")[0] == parts[0]]
        if len(same_lang) == 1:
            return same_lang[0], None
        return self.locales[self.default], None


def language_of(locale: str | None) -> str:
    """The primary language subtag of a locale tag (``en`` when none is given or it is 'generic')."""
    if not locale or not locale.strip() or locale.strip().lower() == "generic":
        return "en"
    return locale.strip().replace("_", "-").split("-")[0].lower()


class Protocol:
    """Renders the fixed protocol replies for a category and locale, and recognises them in history.

    The reply's language is the locale's language when ``data/protocol.json`` has texts for it
    (English, German, French), else English with a note saying so; a locale whose region has no crisis
    lines of its own gets the international list with a note saying so (`CrisisResources.lookup`)."""

    CATEGORIES = ("suicide", "self_harm", "harm_to_others")

    def __init__(self, resources: CrisisResources | None = None, texts_path: str | Path | None = None) -> None:
        self.resources = resources or CrisisResources()
        path = Path(texts_path) if texts_path else _data_path("protocol.json")
        data = _read_json(path, "protocol texts")
        # a file of your own without check-in questions gets the built-in ones (English where it has none)
        builtin = data if texts_path is None else _read_json(_data_path("protocol.json"), "protocol texts")
        builtin_check_in = {
            lang.lower(): raw["check_in"]
            for lang, raw in {"en": builtin, **(builtin.get("languages") or {})}.items()
            if raw.get("check_in")
        }
        self.languages: dict[str, dict[str, Any]] = {}
        try:
            for lang, raw in {"en": data, **(data.get("languages") or {})}.items():
                texts = {c: {"first": raw[c]["first"], "followup": raw[c]["followup"]} for c in self.CATEGORIES}
                texts["output_replacement"] = raw.get("output_replacement", data["output_replacement"])  # type: ignore[assignment]
                texts["notes"] = {**(data.get("notes") or {}), **(raw.get("notes") or {})}
                check_in = raw.get("check_in") or builtin_check_in.get(lang.lower())
                if check_in is not None:
                    texts["check_in"] = {c: str(check_in[c]) for c in self.CATEGORIES}
                self.languages[lang.lower()] = texts
        except (KeyError, TypeError) as e:
            raise UserError(f"{path}: protocol texts need 'first', 'followup' and 'check_in' for {e}") from None
        if "check_in" not in self.languages["en"]:
            self.languages["en"]["check_in"] = {c: str(builtin_check_in["en"][c]) for c in self.CATEGORIES}
        self.texts = self.languages["en"]
        self.output_replacement: str = data["output_replacement"]
        self._openings: list[tuple[str, str, str]] = []
        for texts in [*self.languages.values()] + [
            lr.protocol for lr in self.resources.locales.values() if lr.protocol
        ]:
            for cat in self.CATEGORIES:
                for variant in ("first", "followup"):
                    t = (texts.get(cat) or {}).get(variant)
                    if t:
                        self._openings.append((t.split("{", 1)[0].strip(), cat, variant))
        self._check_ins: list[tuple[str, str]] = [
            (q, cat) for texts in self.languages.values() if "check_in" in texts for cat, q in texts["check_in"].items()
        ]

    def texts_for(self, locale: str | None) -> tuple[dict[str, Any], str | None]:
        """(texts, language without texts of its own) for a locale."""
        lang = language_of(locale)
        if lang in self.languages:
            return self.languages[lang], None
        return self.texts, lang if len(lang) in (2, 3) and lang.isalpha() else None

    def locale_notes(self, locale: str | None, *, own_text: bool = False) -> list[str]:
        """The notes a reply for ``locale`` carries: its region has no crisis lines on file (the
        international list is given), its language has no protocol text (the reply is in English;
        not said when ``own_text``: the locale's entry brings its own reply text)."""
        texts, missing_lang = self.texts_for(locale)
        _, region = self.resources.lookup(locale)
        notes = []
        if region and texts["notes"].get("region_fallback"):
            notes.append(texts["notes"]["region_fallback"].format(region=region))
        if missing_lang and not own_text and texts["notes"].get("language_fallback"):
            notes.append(texts["notes"]["language_fallback"].format(language=missing_lang))
        return notes

    def fallbacks(self, locale: str | None) -> list[str]:
        """What a locale falls back on, in English, for a startup message (empty: nothing)."""
        if not locale:
            return []
        out = []
        _, region = self.resources.lookup(locale)
        if region:
            out.append(f"no crisis lines on file for region {region}: the protocol gives the international list")
        _, lang = self.texts_for(locale)
        if lang:
            out.append(f"no protocol text in language {lang!r}: the protocol replies in English")
        return out

    def reply(self, category: str, *, locale: str | None = None, followup: bool = False) -> str:
        if category not in self.CATEGORIES:
            raise ValueError(f"no protocol for risk category {category!r}")
        lr = self.resources.resolve(locale)
        texts, missing = self.texts_for(locale)
        own_text = bool(lr.protocol and category in lr.protocol)
        if lr.protocol and own_text:
            texts = {**texts, category: {**texts[category], **lr.protocol[category]}}
        template = texts[category]["followup" if followup else "first"]
        emergency, resources = lr.contacts("en" if missing else language_of(locale))
        text = template.format(
            resources="; ".join(r.render() for r in resources),
            primary=resources[0].render(),
            emergency=emergency,
        )
        return " ".join([text, *self.locale_notes(locale, own_text=own_text)])

    def check_in_question(self, locale: str | None = None, category: str = "suicide") -> str:
        """The fixed question appended to a normal reply on the ``check_in`` tier, in the locale's language
        (English with a note when ``data/protocol.json`` has no question in that language)."""
        if category not in self.CATEGORIES:
            raise ValueError(f"no check-in question for risk category {category!r}")
        texts, missing = self.texts_for(locale)
        check_in = texts.get("check_in") or self.texts["check_in"]
        question = str(check_in[category])
        note = texts["notes"].get("check_in_language_fallback")
        if missing and note:
            return f"{question} {note.format(language=missing)}"
        return question

    def with_check_in(self, reply: str, category: str, *, locale: str | None = None) -> str:
        """A normal reply with the check-in question appended as its own paragraph (a reply cut at the
        token limit does not run into it)."""
        question = self.check_in_question(locale, category)
        return f"{reply.rstrip()}\n\n{question}" if reply.strip() else question

    def replacement(self, locale: str | None = None) -> str:
        """The reply that replaces a supporter reply with means or method content."""
        return str(self.texts_for(locale)[0]["output_replacement"])

    def identify(self, text: str) -> tuple[str, str] | None:
        """(category, 'first'|'followup') when ``text`` is a protocol reply, (category, 'check_in') when it
        carries a check-in question (in any language on file), else None. For histories from clients that
        do not keep socialsim's fields: the protocol's fixed opening, or the question's full text."""
        t = text.strip()
        for opening, cat, variant in self._openings:
            if opening and t.startswith(opening):
                return cat, variant
        flat = " ".join(t.split())
        for question, cat in self._check_ins:
            if question in flat:
                return cat, "check_in"
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
