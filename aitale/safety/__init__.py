"""The one content screen for the corpus, the evaluation, ``tell`` and the server (see :mod:`aitale.safety.screen`)."""

from aitale.safety.screen import Screen, Verdict, load_screen

__all__ = ["Screen", "Verdict", "load_screen"]
