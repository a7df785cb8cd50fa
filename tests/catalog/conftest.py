"""Session fixtures of the catalog tests (see ``publish_fixture.py``)."""

from tests.catalog.publish_fixture import published

__all__ = ["published"]
