"""``inviz inputs``: fingerprint the files the pipeline reads from outside the project.

``dvc.yaml`` runs this stage on every ``dvc repro`` (``always_changed``); ``data`` depends on its
data fingerprint and ``train`` on its weights fingerprint, so replacing the Imagenette folder
given by ``data.imagenette.local_path`` or the ``model.weights`` file re-runs them (see
:mod:`inviz.core.fingerprint`). It takes a moment and logs no MLflow run (bookkeeping, not a result).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

HELP = "fingerprint outside inputs (data.imagenette.local_path, a model.weights file) so DVC sees changes"
log = logging.getLogger(__name__)

#: the stage's paths, all required (see :mod:`inviz.stages`): option -> help
PATHS = {
    "--data-out": "output: fingerprint JSON of the data stage's outside input",
    "--weights-out": "output: fingerprint JSON of the train stage's outside input",
}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from inviz.core.config import lookup, read_params
    from inviz.core.fingerprint import data_inputs, weights_inputs
    from inviz.core.io import write_json

    # read as plain values (the defaults of DataConfig / ModelConfig): no torch import for a fingerprint
    params = read_params(args.params)
    data = data_inputs(
        lookup(params, "data.source", "imagenette"), lookup(params, "data.imagenette.local_path")
    )
    weights = weights_inputs(str(lookup(params, "model.weights", "imagenet")))
    write_json(args.data_out, data)
    write_json(args.weights_out, weights)
    log.info("inputs: data %s, weights %s", _brief(data["local_path"]), _brief(weights["weights"]))
    return {"data": data, "weights": weights}


def _brief(fp: Any) -> str:
    return f"{fp['kind']} {fp['sha256'][:12]}" if isinstance(fp, dict) else str(fp)
