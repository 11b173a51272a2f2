"""ganbench: a benchmark harness and leaderboard for GAN training methods."""

__version__ = "0.1.0"
