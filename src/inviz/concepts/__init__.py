"""§4 Global explanations (docs/method.md §4): label importance per class and layer, TCAV validation.

``importance`` (the table, concept/random examples), ``tcav/`` (TCAV on tensors, CAV cache),
``explain`` (:func:`~inviz.concepts.explain.explain_classes` -> ``GlobalResult``), ``report``
(Markdown, Figure 4).
"""
