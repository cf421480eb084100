"""Pydantic models of every request and response of the game's API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _In(BaseModel):
    """A request body: unknown fields are an error (a typo must not pass silently)."""

    model_config = ConfigDict(extra="forbid")


class SignUpIn(_In):
    """Sign-up: nickname, AI background (the paper's question) and the language the player types in."""

    nickname: str = Field(max_length=200)
    ai_background: bool
    language: str = Field(max_length=16)


class PlayerOut(BaseModel):
    """A player as the player sees themself."""

    nickname: str
    ai_background: bool
    language: str
    points: int
    rounds: int
    questionnaire_due: bool


class SignUpOut(BaseModel):
    """The new player and its token (also set as an HttpOnly cookie); the token is shown once."""

    player: PlayerOut
    token: str


class SessionOut(BaseModel):
    """The player signed up on this browser, if any."""

    player: PlayerOut | None


class ConfigOut(BaseModel):
    """What the page needs to know about the game."""

    title: str
    languages: list[str]
    n_levels: int
    percents: list[float]
    min_features: int
    max_features: int
    max_text_length: int
    what_if: bool


class ChoiceOut(BaseModel):
    """An offered class: an id to send back and the name shown."""

    id: int
    name: str


class ResultOut(BaseModel):
    """A finished round: right (true), wrong (false) or resigned (null); the true class; points."""

    correct: bool | None
    true_class: str
    guessed: str | None
    points: int
    total_points: int
    features: list[str]


class RoundOut(BaseModel):
    """A round as its player sees it: an opaque token, the level, the choices; the result when finished.

    status : ``open``, ``guessed`` (features wanted: ``features_min`` .. ``features_max``), ``done``
    or ``resigned``. ``image`` is the URL of the level shown; ``guessed`` the id guessed.
    """

    token: str
    number: int
    status: str
    level: int
    n_levels: int
    percent: float
    hints_used: int
    hints_left: int
    can_resign: bool
    image: str
    choices: list[ChoiceOut]
    guessed: int | None
    features_min: int | None
    features_max: int | None
    result: ResultOut | None


class NextRoundOut(BaseModel):
    """The next (or unfinished) round; ``round`` is null when no map is left for the player."""

    round: RoundOut | None
    message: str = ""
    questionnaire_due: bool = False


class GuessIn(_In):
    """A guess: the id of one of the offered classes."""

    choice: int


class FeaturesIn(_In):
    """The free-text features that made the player decide."""

    texts: list[str] = Field(max_length=20)


class StandingOut(BaseModel):
    """A leaderboard line (ties share a rank)."""

    rank: int
    nickname: str
    points: int
    rounds: int


class LeaderboardOut(BaseModel):
    """The top players and the asking player's own standing."""

    top: list[StandingOut]
    me: StandingOut
    players: int


class QuestionnaireFormOut(BaseModel):
    """The questionnaire's items: SUS statements (1-5) and TLX subscales (0-100)."""

    sus: list[str]
    tlx: list[dict[str, str]]
    tlx_step: int


class QuestionnaireIn(_In):
    """SUS (10 answers 1-5) and raw TLX (6 answers 0-100), or ``skip``."""

    sus: list[int] | None = None
    tlx: list[int] | None = None
    skip: bool = False


class QuestionnaireOut(BaseModel):
    """The scores of the answers (null when skipped)."""

    sus_score: float | None
    tlx_raw: float | None


class PredictionOut(BaseModel):
    """The model's answer: the predicted class, the top 3 with probabilities, the true class's probability."""

    label: str
    top: list[dict[str, float | str]]
    true_class: str
    true_prob: float


class WhatIfEditIn(_In):
    """An edited mask: base64 of ``grid x grid`` opacities (0 hidden … 255 shown), row by row."""

    mask: str = Field(max_length=200_000)


class WhatIfOut(BaseModel):
    """The panel's state: the mask, the model's prediction on it, edits left, server time in ms."""

    grid: int
    mask: str
    image: str | None
    prediction: PredictionOut
    edits_left: int
    ms: float
