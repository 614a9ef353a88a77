"""Results: the SQLite store of finished runs, leaderboard tables and their output formats."""
