"""The incident journey (test_incident_journey.py) on PostgreSQL: the same tests and fixtures in a
module of their own, so that ``pytest -n 4 --dist loadfile`` runs this half on another
worker than the SQLite half. Skipped without ``RMA_TEST_DATABASE_URL``."""

from tests.e2e.conftest import ON_POSTGRESQL
from tests.e2e.test_incident_journey import *  # noqa: F403 - the tests and their fixtures

pytestmark = ON_POSTGRESQL
