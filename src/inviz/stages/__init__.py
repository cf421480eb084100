"""Pipeline stages: thin glue between ``dvc.yaml`` (paths, params) and the library.

Each stage module defines ``HELP``, ``add_arguments(parser)`` and ``run(args) -> dict`` (the
stage's metrics). Paths come from the command line (``dvc.yaml`` owns them); parameters from the
``--params`` file. Add a stage by adding a module here and its name to :data:`STAGES`.
"""

#: stage name -> module (in ``inviz.stages``), in pipeline order.
STAGES: dict[str, str] = {
    "data": "data",
    "train": "train",
    "select": "select",
    "extract": "extract",
    "masks": "masks",
    "labels_simulate": "labels_simulate",
    "labels_import": "labels_import",
    "labels_analyze": "labels_analyze",
    "figures": "figures",
    "global": "global_explain",
    "explorer": "explorer",
    "survey": "survey",
    "survey_import": "survey_import",
    "table2": "table2",
    "compare": "compare",
}
