"""Shared fixtures: one LibreOffice session for the whole run, and small GPT-2 checkpoints."""
import os

import pytest

from generator.config import GPT2Error
from generator.libreoffice import LibreOffice, find_soffice, find_uno_python

try:
    find_soffice(), find_uno_python()
    HAVE_LO = True
except GPT2Error:
    HAVE_LO = False

# On CI the oracle is mandatory: a missing LibreOffice fails the run instead of skipping tests.
needs_lo = pytest.mark.skipif(not HAVE_LO and not os.environ.get("CI"),
                              reason="LibreOffice with python3-uno is not installed")


@pytest.fixture(scope="session")
def lo():
    """One headless LibreOffice for all tests (a workbook at a time)."""
    with LibreOffice(timeout=120) as session:
        yield session
