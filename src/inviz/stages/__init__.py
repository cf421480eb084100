"""Pipeline stages: thin glue between ``dvc.yaml`` (paths, params) and the library.

Each stage module defines ``HELP``, ``add_arguments(parser)`` and ``run(args) -> dict`` (the
stage's metrics). Paths come from the command line (``dvc.yaml`` owns them); parameters from the
``--params`` file. Add a stage by adding a module here and its name to :data:`inviz.cli.STAGES`
(the registry lives there, so adding a stage does not change a file every stage imports, which
would make DVC re-run them all).
"""
