"""The story server shared by the API and page tests."""

import pytest

from tests.serve.serving import serve


@pytest.fixture(scope="session")
def story_server(dvc_project, tmp_path_factory):
    """The story service on the tiny project's export and screen, on a free loopback port, for the session."""
    with serve(dvc_project, tmp_path_factory.mktemp("serve"), max_batch=8) as running:
        yield running
