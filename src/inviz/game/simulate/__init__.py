"""Simulated Deep Reveal players for the offline demo (docs/method.md §2; no real game data here).

Players play the game on the masked images of the synthetic dataset, using its ground-truth
part masks (:class:`inviz.data.parts.PartMasks`) to decide what they can see:

1. a game offers the true class among ``n_choices`` classes drawn at random;
2. at reveal level ``l`` a part of the image is *visible* to the degree it is lit: its coverage
   is the mean soft mask over the part's pixels (:mod:`inviz.game.coverage`). A player
   recognises it with probability
   ``skill * sigmoid(see_sharpness * (coverage - see_threshold))``, one uniform draw per part
   and game, so what is seen only grows with the hints; now and then a player "sees" a part
   that is not there (``hallucination``);
3. the player guesses the offered class whose parts best match what was recognised, at once
   when all its parts were seen or the match is unique and the player is bold enough, else asks
   for a hint; undecided at the last level, the player resigns (``resign_rate``) or guesses among
   the best matches — so wrong guesses happen;
4. after guessing, the player types 1-3 features describing recognised parts (parts of the
   guessed class first): synonyms and multi-word phrases from
   :data:`~inviz.game.simulate.vocabulary.PART_PHRASES`, sometimes a colour read from the image, the class
   name ("bicycle wheel"), typos, odd capitals and punctuation, some Italian, vague words;
5. untrustworthy players (``untrustworthy_share``) guess at random and type unrelated words;
   most fail the screening images (``screening_catch_rate``), a few honest players do too.

The export is written in the authors' layout (``features.csv``, ``guesses_without_text.csv``,
``resigns.csv``) plus ``players.csv`` (screening flags), ``translations.csv`` (manual
translations of a share of the Italian texts) and ``game_classes.csv`` (the game's class list,
alphabetical like the paper's). A few export defects are injected on purpose (duplicated rows,
empty and over-long texts) so the import's validation has something to report. Everything is
seeded.

Modules: :mod:`~inviz.game.simulate.config` (the ``labels_simulate`` section),
:mod:`~inviz.game.simulate.vocabulary` (the words players type for parts and colours, and their
manual translations), :mod:`~inviz.game.simulate.texts` (how one text is typed),
:mod:`~inviz.game.simulate.players` (the player pool and the games),
:mod:`~inviz.game.simulate.tables` (the export tables and their writer) and
:mod:`~inviz.game.simulate.run` (everything for the ``labels_simulate`` stage in one call).
"""
