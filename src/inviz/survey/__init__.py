"""§5 The comparative survey (docs/method.md §5): panels, the survey kit, questionnaire forms, Table 2.

:mod:`~inviz.survey.panels` (Grad-CAM / LIME / SHAP registry and drawing, ``SurveyConfig``),
:mod:`~inviz.survey.kit` (the survey images, their explanations and panels: ``inviz survey``),
:mod:`~inviz.survey.forms` (questionnaire, fill-in form and its import: ``inviz survey_import``),
:mod:`~inviz.survey.responses` (the long responses table the import writes and Table 2 reads),
:mod:`~inviz.survey.table2` (Table 2 and its significance tests: ``inviz table2``).
"""
