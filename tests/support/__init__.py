"""Helpers the tests import (fixtures live in tests/conftest.py): processes, lakes, real data, Prometheus."""
