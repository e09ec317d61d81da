"""The Streamlit app: its pages call :class:`lookalike.ui.services.Services`, which holds one
:class:`lookalike.Library` and the :class:`lookalike.studies.service.StudyService` over it (no SQL here)."""
