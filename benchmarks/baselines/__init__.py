"""Baseline models written from their published architectures (random weights)."""
