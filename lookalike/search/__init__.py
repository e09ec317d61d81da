"""Query by example: nearest neighbours under one or more metrics, near-duplicates."""
