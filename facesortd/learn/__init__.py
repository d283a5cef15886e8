"""Everything that makes or judges an emotion model: datasets and their real sources, faces collected
for training, out-of-source validation and figures, the PyTorch training of the feature net (the
`train` extra), `facesortd train`'s run, labels from a person's moves and from imported datasets, and
the daemon's retrain. Sorting a file never imports this package (tests/test_layout.py)."""
