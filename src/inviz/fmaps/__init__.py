"""§1 Feature-map analysis (docs/method.md §1).

Gradients, channel weights, the map threshold, embedding, clustering, cluster maps, the explain
pipeline, the shard store, the Lightning wrapper, Table 1.
"""
