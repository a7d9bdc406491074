"""Errors a user can act on: each message names what is wrong and how to fix it."""


class ParamsError(ValueError):
    """``params.yaml`` (or a command-line override) holds an invalid value."""


class SourceError(ValueError):
    """A source file (a downloaded book, a story file) is corrupt, empty or not what it claims to be."""
