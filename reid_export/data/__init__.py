"""Data sets: the official Market-1501 layout and the synthetic generator that writes it."""
