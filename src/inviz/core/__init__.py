"""Shared plumbing: typed params, errors, atomic I/O, MLflow tracking, plotting style, pinned assets."""
