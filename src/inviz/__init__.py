"""inviz: Interpretable Network Visualizations (INV), layer-wise explanations of a CNN's decision.

Human-in-the-loop explanations after Bianchi, De Santis, Tocchetti and Brambilla. The subpackages
follow the method (docs/method.md): data and model (``data``, ``models``; §0), feature-map
analysis (``fmaps``; §1), masked images for the label game (``game``; §2), label analysis
(``labels``; §3), global explanations (``concepts``; §4) and the comparative survey (``survey``;
§5); ``views`` draws the INV, ``comparison`` sets results beside the paper's, ``core`` holds the
shared I/O, configuration and tracking. Pipeline stages (``inviz <stage>``) are thin glue in
``inviz.stages``.
"""

__version__ = "0.1.0"
