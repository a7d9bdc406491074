"""What the tests share, by purpose:

- :mod:`tests.support.repo`: the repository and the reference corpus beside it;
- :mod:`tests.support.stages`: running a stage as DVC would, the train stage on given data;
- :mod:`tests.support.params`: tiny params (a model that trains in seconds), setting one key, recording the reads;
- :mod:`tests.support.shell`: the real ``dvc``/``git`` CLIs, a commit;
- :mod:`tests.support.projects`: temporary DVC projects (made, cloned) and what a repro ran;
- :mod:`tests.support.models`: tiny random-weight models of each architecture.
"""
