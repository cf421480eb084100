"""§2 Deep Reveal, the label game (docs/method.md §2).

- :mod:`inviz.game.reveal` — the masked images of a cluster map; the one soft reveal mask;
- :mod:`inviz.game.assets` — every kept cluster map as masked images in per-layer zips + manifest;
- :mod:`inviz.game.manifest` — the manifest's layout and reading the masked images back;
- :mod:`inviz.game.coverage` — what the game shows of each ground-truth part (demo);
- :mod:`inviz.game.export` — game exports in, one validated canonical table out;
- :mod:`inviz.game.simulate` — simulated players and their vocabulary (demo).
"""
