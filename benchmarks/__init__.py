"""`python -m benchmarks`: every family's bench_<family>.py, one table, CSV and plot."""
