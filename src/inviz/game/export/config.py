"""``labels_import``: where the game export is and how it is read (docs/method.md §3, input)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class ImportFiles:
    """``labels_import.files``: file names inside the game folder.

    guesses : canonical long format. features, resigns, no_text : the authors' three tables.
    players : optional screening flags (``player_id, passed_screening``).
    translations : optional manual translations (``text, language, translation[, context]``),
    passed on to label analysis (``dictionary`` translator).
    """

    guesses: str = "guesses.csv"
    features: str = "features.csv"
    resigns: str = "resigns.csv"
    no_text: str = "guesses_without_text.csv"
    players: str = "players.csv"
    translations: str = "translations.csv"


@dataclass(frozen=True)
class ImportConfig:
    """``labels_import`` section.

    source_dir : the game folder (read by ``dvc.yaml``, which passes it as ``--game-dir``; the
        demo points it at the simulator's output, the paper profile at a user-provided folder).
    class_map : game class list file (``--class-map`` in ``dvc.yaml``).
    format : ``auto`` (canonical if ``files.guesses`` exists, else the authors' layout),
        ``canonical`` or ``authors``.
    files : file names in the game folder.
    encoding : text encoding of the files (undecodable bytes make a ``bad_encoding`` row).
    max_hints : most hints a player can use (paper: 5).
    max_text_length : longest accepted text in characters.
    default_language : language of texts without one.
    check_cluster_identity : check the authors' ``image, layer, cluster`` against the manifest.
    strict : turn every row problem into an error.
    failed_players : player ids that failed the screening images (excluded).
    use_export_screening : also exclude players flagged in ``players.csv`` / ``passed_screening``.
    max_listed_problems : problems quoted in error messages and logs.
    """

    source_dir: str = "game_export"
    class_map: str = "src/inviz/resources/game_classes_imagenette.csv"
    format: Literal["auto", "canonical", "authors"] = "auto"
    files: ImportFiles = field(default_factory=ImportFiles)
    encoding: str = "utf-8"
    max_hints: int = 5
    max_text_length: int = 200
    default_language: str = "en"
    check_cluster_identity: bool = True
    strict: bool = False
    failed_players: list[str] = field(default_factory=list)
    use_export_screening: bool = True
    max_listed_problems: int = 20

    def __post_init__(self) -> None:
        if self.max_hints < 0:
            raise ValueError(f"max_hints: expected >= 0, got {self.max_hints}")
        if self.max_text_length < 1:
            raise ValueError(f"max_text_length: expected >= 1, got {self.max_text_length}")
