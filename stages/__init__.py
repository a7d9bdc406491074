"""DVC stages: each module is one stage of ``dvc.yaml`` and one section of ``params.yaml``."""
