"""Simulated Deep Reveal players for the offline demo (no real game data exists here).

Players play the game on the masked images of the synthetic dataset, using its ground-truth
part masks (:class:`inviz.data.synthetic.PartMasks`) to decide what they can see:

1. a game offers the true class among ``n_choices`` classes drawn at random;
2. at reveal level ``l`` a part of the image is *visible* to the degree it is lit: its coverage
   is the mean soft mask over the part's pixels. A player recognises it with probability
   ``skill * sigmoid(see_sharpness * (coverage - see_threshold))``, one uniform draw per part
   and game, so what is seen only grows with the hints; now and then a player "sees" a part
   that is not there (``hallucination``);
3. the player guesses the offered class whose parts best match what was recognised, at once
   when all its parts were seen or the match is unique and the player is bold enough, else asks
   for a hint; undecided at the last level, the player resigns (``resign_rate``) or guesses among
   the best matches — so wrong guesses happen;
4. after guessing, the player types 1-3 features describing recognised parts (parts of the
   guessed class first): synonyms and multi-word phrases from
   :data:`~inviz.data.synthetic.PART_PHRASES`, sometimes a colour read from the image, the class
   name ("bicycle wheel"), typos, odd capitals and punctuation, some Italian, vague words;
5. untrustworthy players (``untrustworthy_share``) guess at random and type unrelated words;
   most fail the screening images (``screening_catch_rate``), a few honest players do too.

The export is written in the authors' layout (``features.csv``, ``guesses_without_text.csv``,
``resigns.csv``) plus ``players.csv`` (screening flags), ``translations.csv`` (manual
translations of a share of the Italian texts) and ``game_classes.csv`` (the game's class list,
alphabetical like the paper's). A few export defects are injected on purpose (duplicated rows,
empty and over-long texts) so the import's validation has something to report. Everything is
seeded.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from inviz.game.reveal import (
    RevealConfig,
    blur_sigma,
    percentile_mask,
    soft_mask,
    upscale_factor,
    upscale_nearest,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimulateConfig:
    """``labels_simulate`` section (demo only).

    enabled : run the simulation (the paper profile leaves it off and brings real exports).
    seed : seeds every draw.
    n_players : size of the player pool. plays_per_map : games played on each cluster map
        (players drawn without replacement from the pool).
    n_choices : classes offered per game, the true one included (paper: a random subset).
    see_threshold, see_sharpness : coverage at which a part is recognised half the time (times
        skill) and the slope of that logistic curve.
    skill : (min, max) per-player probability factor of recognising a visible part.
    boldness : (min, max) per-player probability of guessing on a unique partial match.
    hallucination : per-game probability of "seeing" a random part that is not there.
    resign_rate : probability of resigning when undecided after the last hint.
    untrustworthy_share : share of players who play at random.
    screening_catch_rate : probability that an untrustworthy player fails the screening images.
    honest_fail_rate : probability that an honest player fails them anyway.
    italian_share : share of players who type in Italian. english_mix : probability that such a
        player types one text in English anyway.
    features_per_guess : (min, max) texts typed after a guess.
    no_text_rate : probability of a guess without text.
    colour_rate : probability that a text names the part's colour.
    class_name_rate : probability that a text contains the guessed class's name.
    typo_rate : probability of a typo in a text.
    vague_rate : probability of a vague text ("shape", "colours", …) instead of a part.
    translation_coverage : share of the distinct Italian texts the manual translations cover.
    defect_rows : share of feature rows given an export defect (duplicate, empty, over-long).
    """

    enabled: bool = False
    seed: int = 432
    n_players: int = 60
    plays_per_map: int = 5
    n_choices: int = 4
    see_threshold: float = 0.3
    see_sharpness: float = 12.0
    skill: tuple[float, float] = (0.7, 0.98)
    boldness: tuple[float, float] = (0.2, 0.8)
    hallucination: float = 0.03
    resign_rate: float = 0.5
    untrustworthy_share: float = 0.1
    screening_catch_rate: float = 0.9
    honest_fail_rate: float = 0.02
    italian_share: float = 0.25
    english_mix: float = 0.2
    features_per_guess: tuple[int, int] = (1, 3)
    no_text_rate: float = 0.08
    colour_rate: float = 0.25
    class_name_rate: float = 0.15
    typo_rate: float = 0.08
    vague_rate: float = 0.05
    translation_coverage: float = 0.8
    defect_rows: float = 0.01

    def __post_init__(self) -> None:
        for name in ("hallucination", "resign_rate", "untrustworthy_share", "screening_catch_rate", "honest_fail_rate",
                     "italian_share", "english_mix", "no_text_rate", "colour_rate", "class_name_rate", "typo_rate",
                     "vague_rate", "translation_coverage", "defect_rows", "see_threshold"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise ValueError(f"{name}: expected a probability in [0, 1], got {v}")
        for name in ("skill", "boldness"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi <= 1:
                raise ValueError(f"{name}: expected 0 <= min <= max <= 1, got {(lo, hi)}")
        lo, hi = self.features_per_guess
        if not 1 <= lo <= hi:
            raise ValueError(f"features_per_guess: expected 1 <= min <= max, got {(lo, hi)}")
        if self.n_players < 1 or self.plays_per_map < 0 or self.n_choices < 2:
            raise ValueError("n_players >= 1, plays_per_map >= 0, n_choices >= 2 expected")


#: Manual Italian -> English translations of the phrases in PART_PHRASES / COLOUR_PHRASES
#: (what a human translator would write); phrases missing here fall back to the part's first
#: English phrase.
IT_EN: dict[str, str] = {
    "ruota": "wheel", "ruote": "wheels", "pneumatico": "tyre", "raggi": "spokes", "cerchione": "rim",
    "ruota con i raggi": "wheel with spokes",
    "strisce": "stripes", "righe": "lines", "a righe": "striped", "linee parallele": "parallel lines",
    "strisce zebrate": "zebra stripes", "bande": "bands",
    "stella": "star", "stelle": "stars", "stella a cinque punte": "five-pointed star", "forma di stella": "star shape",
    "anello": "ring", "cerchio": "circle", "ciambella": "donut", "cerchio vuoto": "empty circle", "aureola": "halo",
    "scacchiera": "chessboard", "a scacchi": "checkered", "quadretti": "small squares", "quadrati": "squares",
    "bandiera a scacchi": "checkered flag",
    "puntini": "dots", "pallini": "polka dots", "pois": "polka dots", "cerchietti": "small circles", "pillole": "pills",
    "bolle": "bubbles",
    "triangolo": "triangle", "forma triangolare": "triangular shape", "tetto": "roof", "piramide": "pyramid",
    "telaio": "frame",
    "croce": "cross", "segno più": "plus sign", "più": "plus", "croce medica": "medical cross", "croce rossa": "red cross",
    "zigzag": "zigzag", "linea a zigzag": "zigzag line", "linea spezzata": "broken line", "fulmine": "lightning",
    "coda": "tail", "merli": "battlements",
    "griglia": "grid", "finestre": "windows", "reticolo": "lattice", "rete": "net", "piastrelle": "tiles", "grata": "grate",
    "mezzaluna": "half moon", "luna": "moon", "falce di luna": "crescent moon", "spicchio di luna": "sliver of moon",
    "banana": "banana",
    "rombo": "rhombus", "losanga": "lozenge", "diamante": "diamond", "forma a rombo": "diamond shape", "aquilone": "kite",
}

#: Vague texts players type when they cannot name what they saw.
VAGUE = {"en": ["shape", "colours", "no idea", "the shape", "pattern", "something", "lines and colours"],
         "it": ["forma", "colori", "non so", "qualcosa"]}
_IT_EN_VAGUE = {"forma": "shape", "colori": "colours", "non so": "i don't know", "qualcosa": "something"}

_KEYBOARD_NEIGHBOURS = {
    "a": "sq", "b": "vn", "c": "xv", "d": "sf", "e": "wr", "f": "dg", "g": "fh", "h": "gj", "i": "uo", "j": "hk",
    "k": "jl", "l": "k", "m": "n", "n": "bm", "o": "ip", "p": "o", "q": "w", "r": "et", "s": "ad", "t": "ry",
    "u": "yi", "v": "cb", "w": "qe", "x": "zc", "y": "tu", "z": "x",
}


def typo(text: str, rng: np.random.Generator) -> str:
    """One random typo (swap, drop, double or neighbour key) in a word of 4+ letters."""
    words = text.split(" ")
    idx = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not idx:
        return text
    i = int(rng.choice(idx))
    w = words[i]
    j = int(rng.integers(1, len(w) - 1))
    op = int(rng.integers(4))
    if op == 0:
        w = w[:j] + w[j + 1] + w[j] + w[j + 2:]
    elif op == 1:
        w = w[:j] + w[j + 1:]
    elif op == 2:
        w = w[:j] + w[j] + w[j:]
    else:
        near = _KEYBOARD_NEIGHBOURS.get(w[j].lower(), w[j])
        w = w[:j] + near[int(rng.integers(len(near)))] + w[j + 1:]
    words[i] = w
    return " ".join(words)


@dataclass(frozen=True)
class Player:
    """A simulated player: id, skill, boldness, language, trustworthiness, screening result."""

    player_id: str
    skill: float
    boldness: float
    language: str
    trustworthy: bool
    passed_screening: bool


def make_players(cfg: SimulateConfig, rng: np.random.Generator) -> list[Player]:
    """The player pool (``p001`` …), drawn from ``rng``."""
    out = []
    for i in range(cfg.n_players):
        trustworthy = bool(rng.random() >= cfg.untrustworthy_share)
        fail = rng.random() < (cfg.honest_fail_rate if trustworthy else cfg.screening_catch_rate)
        out.append(Player(
            player_id=f"p{i + 1:03d}",
            skill=float(rng.uniform(*cfg.skill)),
            boldness=float(rng.uniform(*cfg.boldness)),
            language="it" if rng.random() < cfg.italian_share else "en",
            trustworthy=trustworthy,
            passed_screening=not fail,
        ))
    return out


def part_coverage(
    cmap: np.ndarray, part_masks: Mapping[str, np.ndarray], reveal_cfg: RevealConfig
) -> tuple[list[str], np.ndarray]:
    """Coverage of each part at each reveal level: mean soft mask over the part's pixels.

    Parameters
    ----------
    cmap : ndarray (h, h), the cluster map. part_masks : part -> boolean mask (H, W) at the
        image's resolution (non-empty masks only).

    Returns
    -------
    parts : the part names (sorted). coverage : ndarray (L, P) in [0, 1].
    """
    g = reveal_cfg.game_size
    sigma = blur_sigma(upscale_factor(np.shape(cmap), g), reveal_cfg.sigma)
    up = upscale_nearest(np.asarray(cmap, dtype=np.float64), g)
    parts = sorted(part_masks)
    big = {p: upscale_nearest(part_masks[p].astype(np.uint8), g).astype(bool) for p in parts}
    cov = np.zeros((len(reveal_cfg.levels), len(parts)))
    for li, q in enumerate(reveal_cfg.levels):
        soft = soft_mask(percentile_mask(up, q), sigma, reveal_cfg.truncate, reveal_cfg.blur_mode)
        for pi, p in enumerate(parts):
            m = big[p]
            cov[li, pi] = float(soft[m].mean()) if m.any() else 0.0
    return parts, cov


def part_colour(image: np.ndarray, mask: np.ndarray, palette: Mapping[str, Sequence[int]]) -> str | None:
    """Palette colour nearest to the median RGB of ``image`` (H, W, 3) under ``mask`` (H, W)."""
    if not mask.any() or not palette:
        return None
    rgb = np.median(image[mask].reshape(-1, 3).astype(float), axis=0)
    names = list(palette)
    d = [np.sum((rgb - np.asarray(palette[n], dtype=float)) ** 2) for n in names]
    return names[int(np.argmin(d))]


@dataclass(frozen=True)
class GameMap:
    """One cluster map to play: id, image, layer, cluster, true label, image file name,
    part coverage per level (parts, (L, P) array) and each part's colour name."""

    cluster_id: int
    image: str
    image_file: str
    layer: str
    cluster: int
    label: int
    parts: tuple[str, ...]
    coverage: np.ndarray
    colours: Mapping[str, str | None]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _describe(
    part: str, lang: str, colour: str | None, class_name: str, cfg: SimulateConfig, rng: np.random.Generator,
    phrases: Mapping[str, Mapping[str, Sequence[str]]], colour_words: Mapping[str, Mapping[str, Sequence[str]]],
) -> tuple[str, str]:
    """A text for ``part`` and its clean English translation."""
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


def _noise(text: str, cfg: SimulateConfig, rng: np.random.Generator) -> str:
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


def play(
    maps: Sequence[GameMap],
    class_parts: Sequence[Sequence[str]],
    class_names: Sequence[str],
    cfg: SimulateConfig,
    phrases: Mapping[str, Mapping[str, Sequence[str]]],
    colour_words: Mapping[str, Mapping[str, Sequence[str]]],
    vocabulary: Sequence[str],
) -> tuple[pd.DataFrame, list[Player]]:
    """Play every map ``cfg.plays_per_map`` times.

    Parameters
    ----------
    maps : the cluster maps with their part coverage.
    class_parts, class_names : parts and readable name of each class (index = label).
    phrases, colour_words : part/colour -> language -> words (``PART_PHRASES``, ``COLOUR_PHRASES``).
    vocabulary : every part name (for hallucinations and untrustworthy players).

    Returns
    -------
    games : one row per typed text / guess without text / resign — ``guess_id, player_id,
        cluster_id, kind, guessed_label, hints, text, text_en_clean, language`` plus the map's
        ``image, image_file, layer, cluster, label``.
    players : the player pool.
    """
    rng = np.random.default_rng(cfg.seed)
    players = make_players(cfg, rng)
    n_classes = len(class_parts)
    n_levels = maps[0].coverage.shape[0] if maps else 0
    rows: list[dict[str, Any]] = []
    guess_no = 0
    for m in maps:
        chosen = rng.choice(len(players), size=min(cfg.plays_per_map, len(players)), replace=False)
        for pi in sorted(int(i) for i in chosen):
            p = players[pi]
            others = [k for k in range(n_classes) if k != m.label]
            offered = sorted([m.label, *rng.choice(others, size=min(cfg.n_choices - 1, len(others)), replace=False).tolist()])
            base = {"player_id": p.player_id, "cluster_id": m.cluster_id, "image": m.image, "image_file": m.image_file,
                    "layer": m.layer, "cluster": m.cluster, "label": m.label}
            guess_no += 1
            gid = f"g{guess_no:06d}"
            u = rng.random(len(m.parts))
            halluc = str(rng.choice(vocabulary)) if rng.random() < cfg.hallucination else None
            guessed, level, seen = None, 0, set()
            if not p.trustworthy:
                level = int(rng.integers(n_levels))
                guessed = int(rng.choice(offered))
                seen = {str(rng.choice(vocabulary))}
            else:
                for level in range(n_levels):
                    prob = p.skill * _sigmoid(cfg.see_sharpness * (m.coverage[level] - cfg.see_threshold))
                    seen = {part for part, ui, pr in zip(m.parts, u, prob, strict=False) if ui < pr}
                    if halluc:
                        seen.add(halluc)
                    match = {k: len(seen & set(class_parts[k])) for k in offered}
                    best = max(match.values())
                    tops = [k for k, v in match.items() if v == best]
                    last = level == n_levels - 1
                    if best > 0 and len(tops) == 1:
                        k = tops[0]
                        if match[k] == len(class_parts[k]) or rng.random() < p.boldness or last:
                            guessed = k
                            break
                    elif last:
                        if best == 0 and rng.random() < cfg.resign_rate or best > 0 and rng.random() < cfg.resign_rate / 2:
                            guessed = None
                        else:
                            guessed = int(rng.choice(tops))
                        break
            if guessed is None:
                rows.append({**base, "guess_id": gid, "kind": "resign", "guessed_label": None, "hints": n_levels - 1,
                             "text": "", "text_en_clean": "", "language": p.language})
                continue
            hints = level
            if rng.random() < cfg.no_text_rate or not seen:
                rows.append({**base, "guess_id": gid, "kind": "guess", "guessed_label": guessed, "hints": hints,
                             "text": "", "text_en_clean": "", "language": p.language})
                continue
            ordered = sorted(seen, key=lambda s: (s not in class_parts[guessed], s))
            n_text = int(rng.integers(cfg.features_per_guess[0], cfg.features_per_guess[1] + 1))
            n_text = min(n_text, len(ordered)) if p.trustworthy else 1
            for part in ordered[:n_text]:
                lang = p.language
                if lang != "en" and rng.random() < cfg.english_mix:
                    lang = "en"
                if rng.random() < cfg.vague_rate:
                    opts = VAGUE[lang]
                    text = opts[int(rng.integers(len(opts)))]
                    english = text if lang == "en" else _IT_EN_VAGUE.get(text, text)
                else:
                    text, english = _describe(part, lang, m.colours.get(part), class_names[guessed], cfg, rng, phrases, colour_words)
                rows.append({**base, "guess_id": gid, "kind": "feature", "guessed_label": guessed, "hints": hints,
                             "text": _noise(text, cfg, rng), "text_en_clean": english, "language": lang})
    cols = ["guess_id", "player_id", "cluster_id", "image", "image_file", "layer", "cluster", "label", "kind",
            "guessed_label", "hints", "text", "text_en_clean", "language"]
    return pd.DataFrame(rows, columns=cols), players


@dataclass(frozen=True)
class Export:
    """The authors' export layout as DataFrames (written by the ``labels_simulate`` stage)."""

    features: pd.DataFrame
    no_text: pd.DataFrame
    resigns: pd.DataFrame
    players: pd.DataFrame
    translations: pd.DataFrame
    game_classes: pd.DataFrame
    defects: dict[str, int]


def to_export(
    games: pd.DataFrame, players: Sequence[Player], game_classes: pd.DataFrame, cfg: SimulateConfig, max_text_length: int = 200
) -> Export:
    """Lay the simulated games out like the authors' export (+ players, translations, classes).

    ``game_classes`` : ``game_id, game_name, class_folder, class_name, label``.
    """
    rng = np.random.default_rng([cfg.seed, 1])
    gid_of = dict(zip(game_classes["label"], game_classes["game_id"], strict=False))
    name_of = dict(zip(game_classes["label"], game_classes["game_name"], strict=False))
    feats = games[games["kind"] == "feature"]
    features = pd.DataFrame({
        "characteristic": feats["text"],
        "guess_id": feats["guess_id"],
        "percentile": feats["hints"].astype(int),
        "guessed_label_id": feats["guessed_label"].map(gid_of).astype(int),
        "layer": feats["layer"],
        "cluster": feats["cluster"].astype(int),
        "cluster_id": feats["cluster_id"].astype(int),
        "image": feats["image_file"],
        "label_en": feats["label"].map(name_of),
        "language_en": feats["language"].map({"en": "English", "it": "Italian"}).fillna(feats["language"]),
        "player_id": feats["player_id"],
    }).reset_index(drop=True)
    # export defects: duplicated rows, empty and over-long texts
    n_def = int(round(cfg.defect_rows * len(features)))
    defects = {"duplicate_row": 0, "empty_text": 0, "text_too_long": 0}
    if n_def and len(features):
        idx = rng.choice(len(features), size=min(n_def, len(features)), replace=False)
        kinds = rng.integers(3, size=len(idx))
        extra = []
        for i, k in zip(idx, kinds, strict=False):
            if k == 0:
                extra.append(features.iloc[[i]])
                defects["duplicate_row"] += 1
            elif k == 1:
                features.loc[i, "characteristic"] = " "
                defects["empty_text"] += 1
            else:
                features.loc[i, "characteristic"] = ("I think it was " + features.loc[i, "characteristic"] + " ") * (max_text_length // 10)
                defects["text_too_long"] += 1
        if extra:
            features = pd.concat([features, *extra], ignore_index=True)
    nt = games[games["kind"] == "guess"]
    no_text = pd.DataFrame({
        "cluster_id": nt["cluster_id"].astype(int),
        "label": nt["label"].map(gid_of).astype(int),
        "guessed_label_id": nt["guessed_label"].map(gid_of).astype(int),
        "percentile": nt["hints"].astype(int),
        "player_id": nt["player_id"],
        "guess_id": nt["guess_id"],
    })
    rs = games[games["kind"] == "resign"]
    resigns = (rs.groupby(["cluster_id", "player_id"]).size().rename("number_of_resigns").reset_index()
               [["cluster_id", "number_of_resigns", "player_id"]])
    players_t = pd.DataFrame({"player_id": [p.player_id for p in players],
                              "passed_screening": [str(p.passed_screening).lower() for p in players]})
    it = feats[feats["language"] != "en"][["text", "language", "text_en_clean"]].drop_duplicates("text")
    it = it[it["text"].str.strip() != ""].sort_values("text")
    keep = rng.random(len(it)) < cfg.translation_coverage
    translations = pd.DataFrame({"text": it["text"].str.strip().to_numpy()[keep], "language": it["language"].to_numpy()[keep],
                                 "translation": it["text_en_clean"].to_numpy()[keep]})
    classes = game_classes[["game_id", "game_name", "class_folder", "class_name"]]
    return Export(features, no_text.reset_index(drop=True), resigns, players_t, translations, classes, defects)


def summary(games: pd.DataFrame, players: Sequence[Player], export: Export) -> dict[str, Any]:
    """Counts describing a simulation (metrics of the ``labels_simulate`` stage)."""
    answered = games[games["kind"] != "resign"].drop_duplicates("guess_id")
    return {
        "n_players": len(players),
        "n_untrustworthy": sum(not p.trustworthy for p in players),
        "n_failed_screening": sum(not p.passed_screening for p in players),
        "n_games": int(games["guess_id"].nunique()),
        "n_guesses": int(len(answered)),
        "n_resigns": int((games["kind"] == "resign").sum()),
        "n_texts": int((games["kind"] == "feature").sum()),
        "n_guesses_without_text": int((games["kind"] == "guess").sum()),
        "guess_accuracy": float((answered["guessed_label"] == answered["label"]).mean()) if len(answered) else float("nan"),
        "mean_hints": float(answered["hints"].mean()) if len(answered) else float("nan"),
        "share_italian_texts": float((games.loc[games["kind"] == "feature", "language"] != "en").mean()) if len(games) else 0.0,
        "n_manual_translations": int(len(export.translations)),
        "defects": export.defects,
    }
