"""Search spaces shipped with gensynth (YAML data), found with importlib.resources."""
