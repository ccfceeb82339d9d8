"""Test configuration: one hypothesis profile for the whole suite."""

import os

from hypothesis import settings

settings.register_profile("default", deadline=None, max_examples=50)
# Under CI the examples are derandomized so that a green run is reproducible.
settings.register_profile("ci", deadline=None, max_examples=50, derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")

pytest_plugins = ["onnx_fixtures"]
"""The ONNX model fixtures of the importer and `verify --against` tests (tests/onnx_fixtures.py)."""
