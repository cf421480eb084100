"""How a simulated player types one text (docs/method.md §2; demo only).

A text names a part the player recognised, with a synonym or phrase from the vocabulary
(:mod:`inviz.game.simulate.vocabulary`), sometimes a colour or the class name, and the noise of
real typing (typos, odd capitals and punctuation); some texts are vague. Every draw comes from
the caller's random generator, in a fixed order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from inviz.game.simulate.config import SimulateConfig
from inviz.game.simulate.vocabulary import IT_EN, IT_EN_VAGUE, VAGUE

#: part/colour -> language -> words (:data:`~inviz.game.simulate.vocabulary.PART_PHRASES`, ...).
Phrases = Mapping[str, Mapping[str, Sequence[str]]]

#: Keys next to each letter (QWERTY), for neighbour-key typos.
KEYBOARD_NEIGHBOURS = {
    "a": "sq",
    "b": "vn",
    "c": "xv",
    "d": "sf",
    "e": "wr",
    "f": "dg",
    "g": "fh",
    "h": "gj",
    "i": "uo",
    "j": "hk",
    "k": "jl",
    "l": "k",
    "m": "n",
    "n": "bm",
    "o": "ip",
    "p": "o",
    "q": "w",
    "r": "et",
    "s": "ad",
    "t": "ry",
    "u": "yi",
    "v": "cb",
    "w": "qe",
    "x": "zc",
    "y": "tu",
    "z": "x",
}


def typo(text: str, rng: np.random.Generator) -> str:
    """One random typo (swap, drop, double or neighbour key) in a word of 4+ letters.

    Parameters
    ----------
    text : str
        The text; returned unchanged when no word has 4+ letters.
    rng : numpy.random.Generator
        Draws the word, the position and the kind of typo.

    Returns
    -------
    str
    """
    words = text.split(" ")
    idx = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not idx:
        return text
    i = int(rng.choice(idx))
    w = words[i]
    j = int(rng.integers(1, len(w) - 1))
    op = int(rng.integers(4))
    if op == 0:
        w = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
    elif op == 1:
        w = w[:j] + w[j + 1 :]
    elif op == 2:
        w = w[:j] + w[j] + w[j:]
    else:
        near = KEYBOARD_NEIGHBOURS.get(w[j].lower(), w[j])
        w = w[:j] + near[int(rng.integers(len(near)))] + w[j + 1 :]
    words[i] = w
    return " ".join(words)


def describe(
    part: str,
    lang: str,
    colour: str | None,
    class_name: str,
    cfg: SimulateConfig,
    rng: np.random.Generator,
    phrases: Phrases,
    colour_words: Phrases,
) -> tuple[str, str]:
    """Name ``part`` in a text; return it with its clean English translation.

    Parameters
    ----------
    part : str
        The part named.
    lang : str
        Language of the text (``en`` or ``it``).
    colour : str or None
        The part's colour name (a key of ``colour_words``), or None.
    class_name : str
        Readable name of the guessed class (some English texts contain it).
    cfg : SimulateConfig
        Rates of colours and class names.
    rng : numpy.random.Generator
        The game's random generator.
    phrases, colour_words : mapping
        Part / colour -> language -> words.

    Returns
    -------
    text, english : str
        What the player typed (before typing noise) and its clean English translation.
    """
    options = list(phrases[part][lang])
    k = int(rng.integers(len(options)))
    text = options[k]
    english = text if lang == "en" else IT_EN.get(text, phrases[part]["en"][0])
    if colour and colour in colour_words and rng.random() < cfg.colour_rate:
        cw = list(colour_words[colour][lang])
        c = cw[int(rng.integers(len(cw)))]
        ce = colour_words[colour]["en"][0]
        if lang == "en":
            text, english = f"{c} {text}", f"{c} {english}"
        else:
            text, english = f"{text} {c}", f"{ce} {english}"
    if lang == "en" and rng.random() < cfg.class_name_rate:
        form = int(rng.integers(3))
        text = (f"{class_name} {text}", f"the {text} of the {class_name}", f"{class_name}'s {text}")[form]
        english = text
    return text, english


def noise(text: str, cfg: SimulateConfig, rng: np.random.Generator) -> str:
    """``text`` as typed: maybe a typo (``cfg.typo_rate``), odd capitals, trailing punctuation or spaces.

    Parameters
    ----------
    text : str
        The clean text.
    cfg : SimulateConfig
        ``typo_rate``.
    rng : numpy.random.Generator
        The game's random generator.

    Returns
    -------
    str
    """
    if rng.random() < cfg.typo_rate:
        text = typo(text, rng)
    r = rng.random()
    if r < 0.15:
        text = text.capitalize()
    elif r < 0.2:
        text = text.upper()
    r = rng.random()
    if r < 0.08:
        text = text + "!"
    elif r < 0.14:
        text = text + "."
    elif r < 0.18:
        text = "  " + text + " "
    return text


def feature_text(
    part: str,
    language: str,
    colour: str | None,
    class_name: str,
    cfg: SimulateConfig,
    rng: np.random.Generator,
    phrases: Phrases,
    colour_words: Phrases,
) -> tuple[str, str, str]:
    """One feature text a player types about a recognised part.

    A player typing in another language switches to English now and then (``cfg.english_mix``);
    a text is vague (``cfg.vague_rate``) or describes the part (:func:`describe`), then gets
    typing noise (:func:`noise`).

    Parameters
    ----------
    part, colour, class_name, cfg, rng, phrases, colour_words
        As for :func:`describe`.
    language : str
        The player's language.

    Returns
    -------
    text, english, language : str
        The typed text, its clean English translation and the language it was typed in.
    """
    lang = language
    if lang != "en" and rng.random() < cfg.english_mix:
        lang = "en"
    if rng.random() < cfg.vague_rate:
        opts = VAGUE[lang]
        text = opts[int(rng.integers(len(opts)))]
        english = text if lang == "en" else IT_EN_VAGUE.get(text, text)
    else:
        text, english = describe(part, lang, colour, class_name, cfg, rng, phrases, colour_words)
    return noise(text, cfg, rng), english, lang
