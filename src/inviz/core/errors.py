"""Exception base class: errors a user can fix (bad input, missing files, offline downloads).

The CLI prints these as one clear message (naming the file, row or key) without a traceback.
"""


class InvizError(Exception):
    """A problem with the user's input, configuration or environment."""
