"""inviz: Interpretable Network Visualizations (INV) — human-in-the-loop, layer-wise explanations
of a CNN's decision (Bianchi, De Santis, Tocchetti, Brambilla).

The package mirrors the method (METHOD.md): data and model (``data``, ``models``, ``training``),
feature-map analysis (§1), masked images for the label game (§2), label analysis (§3), global
explanations (§4) and the comparative survey (§5). Pipeline stages (``inviz <stage>``) are thin
glue in ``inviz.stages``.
"""

__version__ = "0.1.0"
