"""Crisis resources and protocol language by locale: an unknown region of a known language gets the
international list (never another country's numbers) and says so; the protocol text exists for every
language with resources, else the reply is English with a note."""

import asyncio
import json

import pytest

from socialsim.safety import CrisisResources, Protocol, RuleStage, SafetyEventLog, SafetyLayer
from socialsim.schema import Turn

LANG = {"Danke": "de", "Merci": "fr", "Thank you": "en"}
NATIONAL = {"988", "116 123", "1800 247 247", "13 11 14", "0800 111 0 111", "3114"}


@pytest.fixture(scope="module")
def proto():
    return Protocol()


@pytest.mark.parametrize(
    ("locale", "language_word"),
    [
        ("de-AT", "Danke"),
        ("de-CH", "Danke"),
        ("de_LI", "Danke"),
        ("fr-BE", "Merci"),
        ("fr-CH", "Merci"),
        ("fr-CA", "Merci"),  # region CA has its own entry (en-CA): Canada's line, French text
        ("en-NZ", "Thank you"),
        ("en-ZA", "Thank you"),
    ],
)
def test_unknown_region_gets_international_list(proto, locale, language_word):
    res = CrisisResources()
    entry, missing = res.lookup(locale)
    for cat in Protocol.CATEGORIES:
        for followup in (False, True):
            text = proto.reply(cat, locale=locale, followup=followup)
            opening = proto.languages[LANG[language_word]][cat]["followup" if followup else "first"]
            assert text.startswith(opening.split("{", 1)[0].strip()), text
            assert proto.identify(text) == (cat, "followup" if followup else "first")
            assert "?" in text and "{" not in text
            if locale == "fr-CA":
                assert entry.locale == "en-CA" and missing is None and "988" in text
                continue
            assert entry.locale == "generic" and missing == locale[-2:].upper()
            assert "findahelpline" in text and "your local emergency number" not in text or language_word == "Thank you"
            assert not any(n in text for n in NATIONAL), text  # no other country's numbers
            assert f"({missing})" in text  # the reply says the region has no lines of its own
    assert proto.fallbacks(locale) == (
        []
        if locale == "fr-CA"
        else [f"no crisis lines on file for region {locale[-2:].upper()}: the protocol gives the international list"]
    )


def test_known_locales_and_languages_need_no_note(proto):
    for locale, needle, word in [
        ("de-DE", "0800 111 0 111", "Danke"),
        ("de", "0800 111 0 111", "Danke"),
        ("fr-FR", "3114", "Merci"),
        ("en-GB", "116 123", "Thank you"),
        (None, "findahelpline", "Thank you"),
        ("en", "findahelpline", "Thank you"),
    ]:
        text = proto.reply("suicide", locale=locale)
        assert needle in text and text.startswith(word) and "(" not in text.split("?")[-1], (locale, text)
        assert proto.fallbacks(locale) == []


def test_every_language_with_resources_has_protocol_text(proto):
    res = CrisisResources()
    langs = {tag.split("-")[0] for tag in res.locales if tag != "generic"}
    assert langs == {"en", "de", "fr"}
    assert langs <= set(proto.languages)
    for lang in langs:
        for cat in Protocol.CATEGORIES:
            assert proto.languages[lang][cat]["first"] != proto.languages["en"][cat]["first"] or lang == "en"
        assert RuleStage().screen_output(proto.replacement(f"{lang}-XX")) is None


def test_language_without_text_is_english_with_a_note(proto):
    # Portuguese in Brazil: no entry for BR, no Portuguese text: English, international list, two notes
    text = proto.reply("self_harm", locale="pt-BR")
    assert text.startswith("Thank you for trusting me") and "findahelpline" in text
    assert "(BR)" in text and "language (pt)" in text
    assert proto.fallbacks("pt-BR") == [
        "no crisis lines on file for region BR: the protocol gives the international list",
        "no protocol text in language 'pt': the protocol replies in English",
    ]
    # Spanish in the US: the country's own lines, English text with a note
    text = proto.reply("suicide", locale="es-US")
    assert "988" in text and "language (es)" in text and "(US)" not in text


def test_event_log_records_the_fallback(tmp_path):
    log = SafetyEventLog(tmp_path / "events.jsonl")
    layer = SafetyLayer(event_log=log, source="test", locale="de-AT")
    d = asyncio.run(layer.assess([Turn(speaker="seeker", text="Ich will nicht mehr leben. I want to die.")]))
    assert d.tier == "protocol"
    turn = layer.protocol_turn(d)
    assert turn.text.startswith("Danke") and "findahelpline" in turn.text and "(AT)" in turn.text
    e = log.read()[0]
    assert e["locale"] == "generic" and "AT" in e["locale_fallback"]


def test_user_resources_file_with_unknown_region(tmp_path):
    own = tmp_path / "res.json"
    own.write_text(
        json.dumps(
            {
                "default": "intl",
                "locales": {
                    "intl": {"emergency": "112", "resources": [{"name": "Intl Line", "contact": "call 0000"}]},
                    "de-AT": {"emergency": "144", "resources": [{"name": "Telefonseelsorge", "contact": "142"}]},
                },
            }
        )
    )
    proto = Protocol(CrisisResources(own))
    assert "142" in proto.reply("suicide", locale="de-AT")
    de = proto.reply("suicide", locale="de-DE")  # Germany is not in this file: not Austria's numbers
    assert "142" not in de and "Intl Line" in de and "(DE)" in de
