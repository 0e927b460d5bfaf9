"""Real text the learned safety stage is built and validated on, read from ``../shared`` (never copied
into the repository), and the message-sized windows long posts are cut into.

- **C-SSRS Reddit** (`read_cssrs`): 500 Reddit users' posts, each user labelled by clinicians on the
  Columbia Suicide Severity Rating Scale (``Supportive``, ``Indicator``, ``Ideation``, ``Behavior``,
  ``Attempt``). Gaur et al. 2019, "Knowledge-aware Assessment of Severity of Suicide Risk for Early
  Intervention" (WWW '19), doi 10.5281/zenodo.2667859, CC BY 4.0. Users are split into train and
  validation by a hash of the user id, stratified by label (`cssrs_split`).
- **ESConv** seeker turns (`esconv_seeker_turns`): ordinary emotional-support messages, with the seeker
  turns before each (ESConv, CC BY-NC 4.0, research use only), from ``splits/train.jsonl`` (training)
  and ``splits/valid.jsonl`` (validation).

Posts are long (median about 3,400 characters per user) and chat messages short (ESConv seekers: 15
words median), so posts are cut into windows of whole sentences of at most `WINDOW_WORDS` words
(`windows`); the learned stage scores a long message the same way and keeps its riskiest window.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from socialsim.errors import UserError
from socialsim.io import shared_data_dir

CSSRS_LABELS: tuple[str, ...] = ("Supportive", "Indicator", "Ideation", "Behavior", "Attempt")
WINDOW_WORDS = 40
"""At most this many words in a window (a sentence longer than that is cut at word boundaries)."""
VALID_EVERY = 4
"""One user in ``VALID_EVERY`` of each C-SSRS label is in the validation split."""

_SENTENCE = re.compile(r"(?<=[.!?])\s+|(?<=[.!?])(?=[A-Z])|\n+")


def default_cssrs() -> Path:
    return shared_data_dir() / "crisis" / "cssrs_reddit_500.csv"


def default_esconv(split: str) -> Path:
    """An ESConv split file (`socialsim.recognize.strategy_build.default_split`)."""
    from socialsim.recognize.strategy_build import default_split

    return default_split(split)


@dataclass(frozen=True)
class CssrsUser:
    user: str
    label: str
    posts: tuple[str, ...]


def parse_posts(field: str) -> list[str]:
    """The posts of a C-SSRS ``Post`` field (a Python-list-like string). Some fields were cut at the
    spreadsheet cell limit and no longer parse as a list: their quoted items are read one by one and
    the cut last item is kept as far as it goes."""
    s = field.strip()
    try:
        value = ast.literal_eval(s)
    except (ValueError, SyntaxError):
        value = None
    if isinstance(value, list):
        return [str(v) for v in value if str(v).strip()]
    body = s[1:] if s.startswith("[") else s
    items = re.split(r"""(?<=['"]), (?=['"])""", body)
    out = []
    for item in items:
        item = item.strip().rstrip("]")
        if len(item) >= 1 and item[0] in "'\"":
            q = item[0]
            item = item[1:-1] if item.endswith(q) and len(item) > 1 else item[1:]
        if item.strip():
            out.append(item.replace("\\'", "'").replace('\\"', '"'))
    return out


def read_cssrs(path: str | Path | None = None) -> list[CssrsUser]:
    """Every user of the C-SSRS Reddit CSV; a missing file or a bad row is one `UserError`."""
    p = Path(path) if path else default_cssrs()
    if not p.is_file():
        raise UserError(f"{p}: no such C-SSRS file (the clinician-labelled posts in ../shared/data/crisis/)")
    out = []
    with p.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"User", "Post", "Label"} - set(reader.fieldnames or ())
        if missing:
            raise UserError(f"{p}: missing column(s) {', '.join(sorted(missing))}: not the C-SSRS Reddit CSV")
        for n, row in enumerate(reader, 2):
            label = (row.get("Label") or "").strip()
            if label not in CSSRS_LABELS:
                raise UserError(f"{p}:{n}: field 'Label' is {label!r}: use one of {', '.join(CSSRS_LABELS)}")
            out.append(CssrsUser(row["User"].strip(), label, tuple(parse_posts(row.get("Post") or ""))))
    return out


def cssrs_split(users: list[CssrsUser]) -> dict[str, str]:
    """``user -> "train" | "valid"``: within each label, users sorted by the SHA-256 of their id, every
    `VALID_EVERY`-th one to validation. The same file gives the same split everywhere."""
    out: dict[str, str] = {}
    for label in CSSRS_LABELS:
        ids = sorted((u.user for u in users if u.label == label), key=lambda x: hashlib.sha256(x.encode()).hexdigest())
        for i, uid in enumerate(ids):
            out[uid] = "valid" if i % VALID_EVERY == VALID_EVERY - 1 else "train"
    return out


def windows(text: str, max_words: int = WINDOW_WORDS) -> list[str]:
    """Consecutive whole sentences packed into windows of at most ``max_words`` words (a longer sentence
    is cut into ``max_words``-word pieces); a short text is one window."""
    words = text.split()
    if len(words) <= max_words:
        return [" ".join(words)] if words else []
    out: list[str] = []
    cur: list[str] = []
    for sent in _SENTENCE.split(text):
        sw = sent.split()
        if not sw:
            continue
        while len(sw) > max_words:  # a run-on sentence: cut it
            if cur:
                out.append(" ".join(cur))
                cur = []
            out.append(" ".join(sw[:max_words]))
            sw = sw[max_words:]
        if cur and len(cur) + len(sw) > max_words:
            out.append(" ".join(cur))
            cur = []
        cur.extend(sw)
    if cur:
        out.append(" ".join(cur))
    return out


def esconv_seeker_turns(path: str | Path, context_turns: int = 2) -> list[tuple[str, tuple[str, ...]]]:
    """Every seeker turn of an ESConv split file with the seeker turns before it (at most
    ``context_turns``, oldest first)."""
    from socialsim.recognize.strategy_build import split_dialogs

    out = []
    for dialog in split_dialogs(Path(path)):
        seen: list[str] = []
        for speaker, text, _ in dialog:
            if speaker == "seeker" and text.strip():
                out.append((text, tuple(seen[-context_turns:]) if context_turns else ()))
                seen.append(text)
    return out
