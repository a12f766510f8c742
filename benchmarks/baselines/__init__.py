"""Baselines: models re-stated from their published architectures (random weights), and an import shim
for official code the user has checked out elsewhere (wavehax_official: nothing of it is copied here)."""
