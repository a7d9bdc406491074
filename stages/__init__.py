"""DVC stages: each module is one stage of ``dvc.yaml`` and one section of ``params.yaml``."""

from aitale.machine import pin

pin()  # before any stage loads torch or numpy: the same bytes on every CPU (aitale/machine.py)
