"""Built-in metric configs, one JSON file per family (read by the registry)."""
