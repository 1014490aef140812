"""Analysis of finished studies: per-answer measures, statistics, comparisons (config below it)."""
