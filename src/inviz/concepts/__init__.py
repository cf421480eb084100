"""§4 Global explanations: label importance per class and layer, TCAV validation."""
