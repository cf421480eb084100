"""§1 Feature-map analysis: gradients, channel weights and threshold, embedding, clustering, cluster maps, Table 1."""
