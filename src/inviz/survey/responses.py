"""The long survey-responses table (docs/method.md §5): written by the form import, read by Table 2.

One row per participant × method × aspect. Shared by :mod:`inviz.survey.forms` (``inviz
survey_import``) and :mod:`inviz.survey.table2` (input A of ``inviz table2 --responses``) without
either importing the other, so each stage depends only on the code it runs.
"""

#: columns of the responses table, exactly as in the CSV header
RESPONSE_COLUMNS: tuple[str, ...] = ("participant", "ai_background", "method", "aspect", "rating")
#: accepted values of ``ai_background`` (case-insensitive)
BACKGROUNDS: tuple[str, ...] = ("yes", "no")
