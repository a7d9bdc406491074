"""Stand-alone measurements of the pipeline (not part of the DVC stages, not run by the tests)."""
