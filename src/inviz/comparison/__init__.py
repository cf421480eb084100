"""Reports across runs: the paper comparison and the ablation sweeps."""
