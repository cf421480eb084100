"""Datasets: Imagenette (the paper), synthetic demo data, indexing and loaders."""
