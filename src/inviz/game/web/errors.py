"""Errors of the game's API: what the player (or client) did wrong, as an HTTP status and a message."""

from __future__ import annotations


class GameRequestError(Exception):
    """A request the game refuses: ``status`` (4xx) and a message saying why.

    Parameters
    ----------
    status : int
        The HTTP status (400 bad input, 401 not signed up, 403 forbidden, 404 unknown or foreign
        round, 409 conflict: answered already / nickname taken, 410 expired, 422 invalid value).
    message : str
        What is wrong, for the player.
    """

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def bad(message: str) -> GameRequestError:
    """Refuse an invalid value (422)."""
    return GameRequestError(422, message)


def conflict(message: str) -> GameRequestError:
    """Refuse a request that clashes with the state (409): answered twice, nickname taken, no hints."""
    return GameRequestError(409, message)


def not_found(message: str) -> GameRequestError:
    """Refuse an unknown (or another player's) round (404)."""
    return GameRequestError(404, message)
