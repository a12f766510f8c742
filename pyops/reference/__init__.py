"""Pure-PyTorch oracles: each family's spec in executable form, no compiled code."""
