"""§5 The comparative survey: explainer panels, questionnaire forms, Table 2."""
