"""Text cleaning for label analysis (docs/method.md §3.2): class names, possessives, punctuation.

Labels are free text typed by players ("The dog's ears!!", "ear of the dog", "  Stripes "). Before
embedding, every text is normalised and the name of the class the player *guessed* is removed,
because the class name carries no information about the feature and would make unrelated
features look alike ("ear of the dog" vs "dog paws"). Steps of :func:`clean_text`, in order:

1. Unicode NFKC, typographic apostrophes/quotes/dashes to ASCII, lower case (``lowercase``);
2. remove every alias of the class (its name, the game's name for it, …) as whole words, with
   its plural (``s``/``es``) and possessive (``'s``, ``s'``) forms (``remove_class_name``);
   with ``remove_name_words`` the single words of multi-word names go too ("truck" of
   "garbage truck");
3. punctuation other than intra-word hyphens and apostrophes becomes a space; a left-over
   possessive ``'s`` is dropped (``strip_possessive``);
4. whitespace collapsed, ends stripped.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class TextConfig:
    """``labels_analyze.text``: how texts are cleaned before embedding.

    lowercase : lower-case every text.
    remove_class_name : remove the guessed class's names (and plural/possessive forms).
    remove_name_words : also remove each single word of multi-word class names (off: the paper
        removes the class name).
    strip_possessive : drop a possessive ``'s`` left after other words ("wheel's rim" → "wheel rim").
    """

    lowercase: bool = True
    remove_class_name: bool = True
    remove_name_words: bool = False
    strip_possessive: bool = True


_TRANSLATE = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201b": "'",
        "\u02bc": "'",
        "`": "'",
        "\u00b4": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u00ab": '"',
        "\u00bb": '"',
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "_": " ",
    }
)
_WORD_CHAR = r"[^\W_]"


def normalize(text: str, lowercase: bool = True) -> str:
    """NFKC, ASCII apostrophes/quotes/dashes, ``_`` as space, optional lower case, trimmed."""
    text = unicodedata.normalize("NFKC", str(text)).translate(_TRANSLATE)
    return (text.lower() if lowercase else text).strip()


def _name_regex(name: str) -> str:
    words = [re.escape(w) for w in re.split(r"[\s\-_]+", normalize(name)) if w]
    if not words:
        return ""
    body = r"[\s\-]+".join(words)
    # plural and possessive forms: dog, dogs, dog's, dogs', dogs's, churches
    return body + r"(?:e?s)?(?:'s?)?"


@lru_cache(maxsize=4096)
def _names_pattern(names: tuple[str, ...]) -> re.Pattern[str] | None:
    alts = sorted({_name_regex(n) for n in names if _name_regex(n)}, key=len, reverse=True)
    if not alts:
        return None
    return re.compile(rf"(?<!{_WORD_CHAR})(?:{'|'.join(alts)})(?!{_WORD_CHAR})", re.IGNORECASE)


def name_aliases(names: Iterable[str], name_words: bool = False) -> tuple[str, ...]:
    """Return the distinct, normalised aliases of a class; with ``name_words`` also each word of them."""
    out: list[str] = []
    for n in names:
        if n is None or not str(n).strip():
            continue
        n = normalize(str(n))
        out.append(n)
        if name_words:
            out.extend(w for w in re.split(r"[\s\-]+", n) if len(w) > 1)
    return tuple(sorted(set(out)))


def remove_class_names(text: str, names: Iterable[str]) -> str:
    """Remove whole-word occurrences of ``names`` (with plural/possessive forms) from ``text``.

    >>> remove_class_names("the dog's ears", ["dog"])
    'the  ears'
    """
    pattern = _names_pattern(tuple(names))
    return text if pattern is None else pattern.sub(" ", text)


_PUNCT = re.compile(r"[^\w\s'\-]|_")
_EDGE_MARKS = re.compile(r"(?<![^\W_])['\-]+|['\-]+(?![^\W_])")
_POSSESSIVE = re.compile(r"(?<=[^\W_])'s?(?![^\W_])")
_SPACES = re.compile(r"\s+")


def clean_text(text: str, class_names: Iterable[str] = (), cfg: TextConfig = TextConfig()) -> str:
    """Clean one player text (see the module docstring for the steps).

    Parameters
    ----------
    text : the text as typed (or translated).
    class_names : aliases of the guessed class (e.g. ``["English springer", "Dog"]``).
    cfg : cleaning switches.

    Returns
    -------
    The cleaned text; ``""`` when nothing is left (e.g. the text was only the class name).
    """
    out = normalize(text, cfg.lowercase)
    if cfg.remove_class_name:
        out = remove_class_names(out, name_aliases(class_names, cfg.remove_name_words))
    out = _PUNCT.sub(" ", out)
    if cfg.strip_possessive:
        out = _POSSESSIVE.sub("", out)
    out = _EDGE_MARKS.sub(" ", out)
    return _SPACES.sub(" ", out).strip()


_TOKEN = re.compile(r"[^\W\d_]+(?:['\-][^\W\d_]+)*")


def words(text: str) -> list[str]:
    """Alphabetic word tokens of a cleaned text (hyphenated words kept whole, digits dropped)."""
    return _TOKEN.findall(text)
