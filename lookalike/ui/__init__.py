"""The Streamlit app (talks to lookalike.search and lookalike.store only)."""
