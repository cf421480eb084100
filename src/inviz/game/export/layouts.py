"""One column map per table of a game export (docs/method.md §3, input).

Every table an export may hold is a :class:`Layout`: which of its columns fill which *field* of
the canonical table, which columns must be there, which values must not be empty and the kind
of its rows. The one row validator (:func:`inviz.game.export.rows.validate_rows`) reads any
guess table through its layout; the players, translations and class-map readers use theirs for
the header check.

Fields: ``guess_id, player_id, cluster_id, true_class, kind, guessed_class, hints, text,
text_en, language, passed_screening`` (the canonical long format), ``layer, cluster, image``
(the authors' copy of the cluster's identity) and ``count`` (resigns per row).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

#: Kinds of rows in the canonical table.
KINDS = ("feature", "guess", "resign")

#: Columns of the canonical table written by :func:`~inviz.game.export.importer.import_game`.
OUTPUT_COLUMNS = [
    "guess_id",
    "player_id",
    "cluster_id",
    "image",
    "layer",
    "cluster",
    "true_label",
    "true_class",
    "kind",
    "guessed_label",
    "guessed_class",
    "correct",
    "hints",
    "text",
    "text_en",
    "language",
    "source_file",
    "source_row",
]


@dataclass(frozen=True)
class Layout:
    """The column map of one export table.

    required : field -> column; columns the file must have (messages list them in this order).
    optional : field -> column; columns the file may have.
    nonempty : fields whose value must not be empty (else ``missing_value``).
    nonempty_unless_resign : fields that must not be empty except in ``resign`` rows (checked
        after the row's kind).
    kind : the kind of every row (``None``: read from the ``kind`` field).
    distinct_without_guess_id : rows without a guess id are separate guesses, never duplicates.
    """

    required: Mapping[str, str]
    optional: Mapping[str, str] = field(default_factory=dict)
    nonempty: tuple[str, ...] = ()
    nonempty_unless_resign: tuple[str, ...] = ()
    kind: str | None = None
    distinct_without_guess_id: bool = False

    @property
    def required_columns(self) -> tuple[str, ...]:
        """Columns the file must have, in message order."""
        return tuple(self.required.values())

    @property
    def optional_columns(self) -> tuple[str, ...]:
        """Columns the file may have, in message order."""
        return tuple(self.optional.values())

    def present(self, columns: Iterable[str]) -> dict[str, str]:
        """Map each field whose column is among ``columns`` (a file's header) to that column.

        Parameters
        ----------
        columns : iterable of str
            The columns of a file.

        Returns
        -------
        dict of str to str
            Field -> column, for the required and the present optional columns.
        """
        have = set(columns)
        return {f: c for f, c in {**self.required, **self.optional}.items() if c in have}


def _same(*fields: str) -> dict[str, str]:
    return {f: f for f in fields}


#: The canonical long format (``guesses.csv``): one row per typed feature, guess without text or resign.
CANONICAL = Layout(
    required=_same(
        "guess_id",
        "player_id",
        "cluster_id",
        "true_class",
        "kind",
        "guessed_class",
        "hints",
        "text",
        "language",
    ),
    optional=_same("text_en", "passed_screening", "start_level", "level"),
    nonempty=("guess_id", "cluster_id", "true_class", "kind"),
    nonempty_unless_resign=("guessed_class", "hints"),
)

#: The authors' ``features.csv``: one row per typed feature (``percentile`` = hints used).
FEATURES = Layout(
    required={
        "text": "characteristic",
        "guess_id": "guess_id",
        "hints": "percentile",
        "guessed_class": "guessed_label_id",
        "layer": "layer",
        "cluster": "cluster",
        "cluster_id": "cluster_id",
        "image": "image",
        "true_class": "label_en",
    },
    optional={"text_en": "characteristic_en", "language": "language_en", "player_id": "player_id"},
    nonempty=("guess_id", "cluster_id", "hints", "guessed_class", "true_class"),
    kind="feature",
)

#: The authors' ``resigns.csv``: resigns per cluster map (and player).
RESIGNS = Layout(
    required={"cluster_id": "cluster_id", "count": "number_of_resigns"},
    optional={"player_id": "player_id"},
    nonempty=("cluster_id", "count"),
    kind="resign",
)

#: The authors' ``guesses_without_text.csv``: one row per guess without a typed feature.
NO_TEXT = Layout(
    required={
        "cluster_id": "cluster_id",
        "true_class": "label",
        "guessed_class": "guessed_label_id",
        "hints": "percentile",
    },
    optional=_same("player_id", "guess_id"),
    nonempty=("cluster_id", "true_class", "guessed_class", "hints"),
    kind="guess",
    distinct_without_guess_id=True,
)

#: Optional ``players.csv``: players who failed the screening images (the game's export adds what
#: the players told at sign-up and their counts).
PLAYERS = Layout(
    required=_same("player_id", "passed_screening"),
    optional=_same("ai_background", "language", "rounds", "points", "screening_rounds", "screening_failures"),
)

#: Optional ``translations.csv``: manual translations passed on to label analysis.
TRANSLATIONS = Layout(required=_same("text", "language", "translation"), optional=_same("context"))

#: The game's class list (``labels_import.class_map``).
CLASS_MAP = Layout(required=_same("game_id", "game_name", "class_folder", "class_name"))
