"""Paper-style tables and plots from whatever results exist."""

from bench.report.build import write_report  # noqa: F401
