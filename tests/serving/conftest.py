"""Fixtures of the serving tests: one exported version of the tiny model, shared."""
import pytest

from .tiny_model import export_tiny


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory):
    """``(base, version_dir)`` of tiny version 1 (shared: tests must not modify it)."""
    base = tmp_path_factory.mktemp("models")
    return base, export_tiny(base)
