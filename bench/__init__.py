"""`make bench`: throughput and latency, printed as a table and written to bench/results.md."""
