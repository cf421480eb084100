"""Human knowledge: Deep Reveal game data in, labels per cluster map out (docs/method.md §2-§3).

One module per step:

- :mod:`inviz.game.export` — import and validate game exports (canonical long format or the
  authors' export layout), screening, a report of every dropped row;
- :mod:`inviz.labels.text` — text cleaning, class-name and possessive removal;
- :mod:`inviz.labels.translate` — pluggable translation (``none``, ``deepl``, ``dictionary``)
  with a file cache;
- :mod:`inviz.labels.embed` — Sentence-BERT loading and an embedding cache file;
- :mod:`inviz.labels.cluster` — agglomerative clustering of texts, cluster naming, lemma
  unification;
- :mod:`inviz.labels.scoring` — label scores, best labels, transitive merging of cluster maps;
- :mod:`inviz.game.simulate` — simulated players for the offline demo;
- :mod:`inviz.labels.closed_loop` — checks simulated labels against ground-truth parts.
"""
