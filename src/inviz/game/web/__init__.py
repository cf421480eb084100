"""Deep Reveal, the label game, as a web application (docs/method.md §2, §7; README "The label game").

``inviz game serve`` runs it (FastAPI on uvicorn); ``inviz game export`` writes the answers as a
game export that ``labels_import`` reads; ``inviz game report`` summarises a game (plays,
outcomes, SUS and raw NASA-TLX beside the paper's). Modules:

- :mod:`~inviz.game.web.config` — the ``game`` params section;
- :mod:`~inviz.game.web.settings` — runtime settings (paths, environment) and the opened game;
- :mod:`~inviz.game.web.content` — the ``masks`` output: maps, images streamed from the zips, classes;
- :mod:`~inviz.game.web.db` — SQLAlchemy models, engines, sessions, the schema version;
- :mod:`~inviz.game.web.policy` — the rules as pure functions (next map, classes, levels, points);
- :mod:`~inviz.game.web.rounds` — a round's course over the database;
- :mod:`~inviz.game.web.plays` — the plays per map, kept in the SQLite writer's memory;
- :mod:`~inviz.game.web.accounts` — players, leaderboard, questionnaires;
- :mod:`~inviz.game.web.questionnaire` — SUS and raw TLX items and scoring;
- :mod:`~inviz.game.web.schemas`, :mod:`~inviz.game.web.deps`, :mod:`~inviz.game.web.routers`,
  :mod:`~inviz.game.web.app` — the API;
- :mod:`~inviz.game.web.export`, :mod:`~inviz.game.web.progress`, :mod:`~inviz.game.web.report` —
  what comes out of a game;
- :mod:`~inviz.game.web.whatif` — the "what if" panel (the model on edited images);
- :mod:`~inviz.game.web.cli` — ``inviz game serve|export|report``.

The pages and their scripts are in ``inviz/resources/game/``.
"""
