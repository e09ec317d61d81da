"""User studies: blinded retrieval preferences and 2AFC judgments, with analysis."""
