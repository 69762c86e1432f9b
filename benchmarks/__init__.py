"""Benchmark scripts: each prints a markdown table (and can write JSON) of speed, memory and quality."""
