"""The game's API and pages: one router per resource (players, rounds, leaderboard, questionnaire, …)."""
