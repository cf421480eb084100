"""The label game's class list of a dataset (docs/method.md §2-§3): game ids and names per class folder.

Deep Reveal asks players to pick a class by its game name; the game's export refers to classes by
game id. The paper's list for Imagenette is packaged (:func:`inviz.data.imagenette.imagenette_game_classes`:
English springer is shown as "Dog", tench as "Fish"); for any other dataset the list is generated
from the class names (:func:`game_classes_frame`). The ``data`` stage writes it next to the
class list, so ``labels_import.class_map`` can point at it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

#: columns of a game class list
GAME_CLASS_COLUMNS = ["game_id", "game_name", "class_folder", "class_name"]


def game_classes_frame(class_names: Sequence[str], folders: Sequence[str]) -> pd.DataFrame:
    """Make a game class list like the paper's: ids 1..K in alphabetical order of the readable names.

    Parameters
    ----------
    class_names : sequence of str, length K
        Readable class names in class order.
    folders : sequence of str, length K
        Class folders in class order.

    Returns
    -------
    DataFrame
        ``game_id, game_name, class_folder, class_name``; ``game_name`` is the readable name in
        title case (``"Night Sky"``).
    """
    order = sorted(range(len(class_names)), key=lambda i: str(class_names[i]).lower())
    return pd.DataFrame(
        {
            "game_id": np.arange(1, len(order) + 1),
            "game_name": [str(class_names[i]).title() for i in order],
            "class_folder": [folders[i] for i in order],
            "class_name": [class_names[i] for i in order],
        }
    )
