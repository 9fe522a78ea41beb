"""Hyperspectral classification: the WHU-Hi protocol, classifiers (SVM, Gaussian ML, spectral-spatial CNN),
metrics, and the `hsi-bench` command."""
