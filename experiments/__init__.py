"""Experiment configs shipped with gensynth as ``gensynth.experiments`` (YAML data, found with importlib.resources).

The scripts beside them are the repository's, not the package's: setup.py leaves them out of an install.
"""
