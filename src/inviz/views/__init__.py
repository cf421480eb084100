"""Looking at INV: records read back from the outputs, overlays, figures, the static explorer."""
