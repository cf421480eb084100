"""Deep Reveal exports in, one validated canonical table out (docs/method.md §3, input).

Two input layouts (files in one *game folder*; names are params, see
:class:`~inviz.game.export.config.ImportFiles`):

**Canonical long format** (ours) — ``guesses.csv``, one row per typed feature, plus one row per
guess without text and per resign:

=================  =========================================================================
column             meaning
=================  =========================================================================
guess_id           id of the guess (features of one guess share it); any string
player_id          id of the player (may be empty: unknown player, then not screenable)
cluster_id         cluster map id from the ``masks`` manifest
true_class         class of the image (game id, game name, class name or class folder)
kind               ``feature`` (a typed text), ``guess`` (guess without text), ``resign``
guessed_class      class the player chose (empty for ``resign``)
hints              hints used, integer 0..``max_hints`` (may be empty for ``resign``)
text               the typed feature (``feature`` rows only)
language           language of ``text`` (``en``, ``it``, ``Italian``…; empty = default)
text_en            optional: an English translation shipped with the export
passed_screening   optional: ``true``/``false`` per row's player
=================  =========================================================================

**Authors' export layout** — three tables: ``features.csv`` (``characteristic, guess_id,
percentile`` (= hints used), ``guessed_label_id, layer, cluster, cluster_id, image, label_en``,
optional ``characteristic_en, language_en, player_id``), ``resigns.csv`` (``cluster_id,
number_of_resigns``, optional ``player_id``) and ``guesses_without_text.csv`` (``cluster_id,
label, guessed_label_id, percentile``, optional ``player_id, guess_id``). Game class ids follow
the game's own class list, given as a *class map* file (``game_id, game_name, class_folder,
class_name``; the paper's is ``inviz/resources/game_classes_imagenette.csv``). An optional
``players.csv`` (``player_id, passed_screening``) flags players who failed the screening images.

Validation. *Structural* problems stop the import with an error naming the file (missing file,
missing or misspelt columns, no rows, a bad class map). *Row* problems drop the row and are
counted per reason in the report and listed (file, row = line in the file, column, value) in a
problems table — never silently: ``bad_encoding``, ``malformed_row``, ``missing_value``,
``bad_value``, ``unknown_cluster``, ``cluster_mismatch``, ``hints_out_of_range``,
``unknown_class``, ``true_class_mismatch``, ``empty_text``, ``text_too_long``,
``duplicate_row``, ``inconsistent_guess``. With ``strict`` any row problem is an error.
Screening: rows of players listed in ``failed_players`` or flagged by the export are excluded
and counted.

Modules: :mod:`~inviz.game.export.layouts` (one column map per table),
:mod:`~inviz.game.export.tables` (reading CSVs, header checks), :mod:`~inviz.game.export.rows`
(the one row validator), :mod:`~inviz.game.export.classmap` (the game's class list),
:mod:`~inviz.game.export.importer` (the import and its report), :mod:`~inviz.game.export.problems`
and :mod:`~inviz.game.export.config`. The public names are re-exported here.
"""

from inviz.game.export.classmap import ClassMap, game_classes_frame, load_class_map
from inviz.game.export.config import ImportConfig, ImportFiles
from inviz.game.export.importer import ImportResult, cluster_table, detect_format, import_game, read_guesses
from inviz.game.export.layouts import KINDS, OUTPUT_COLUMNS
from inviz.game.export.problems import PROBLEM_COLUMNS, REASONS, GameExportError, Problem
from inviz.game.export.tables import read_table

__all__ = [
    "KINDS",
    "OUTPUT_COLUMNS",
    "PROBLEM_COLUMNS",
    "REASONS",
    "ClassMap",
    "GameExportError",
    "ImportConfig",
    "ImportFiles",
    "ImportResult",
    "Problem",
    "cluster_table",
    "detect_format",
    "game_classes_frame",
    "import_game",
    "load_class_map",
    "read_guesses",
    "read_table",
]
