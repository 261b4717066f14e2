"""The supported Numba range, checked at import."""

import os
import subprocess
import sys

import pytest

from numbaspike.compiler.numba_version import (
    SUPPORTED_NUMBA,
    check_numba_version,
    numba_version_tuple,
)


def test_the_installed_numba_is_in_the_supported_range():
    import numba

    low, high = SUPPORTED_NUMBA
    assert low <= numba_version_tuple(numba.__version__) < high
    check_numba_version()


@pytest.mark.parametrize("version", ["0.59.1", "0.67.0", "0.69.0rc1", "1.0.0"])
def test_a_numba_outside_the_range_is_refused_naming_the_range(version, monkeypatch):
    monkeypatch.delenv("NUMBASPIKE_ANY_NUMBA", raising=False)
    with pytest.raises(ImportError, match=rf"supports numba>=0\.68,<0\.69.*Numba {version}"):
        check_numba_version(version)
    monkeypatch.setenv("NUMBASPIKE_ANY_NUMBA", "1")
    check_numba_version(version)


def test_version_strings_are_parsed_or_refused():
    assert numba_version_tuple("0.68.1") == (0, 68)
    assert numba_version_tuple("0.69.0rc1") == (0, 69)
    with pytest.raises(ValueError, match="version must look like"):
        numba_version_tuple("dev")


def test_import_numbaspike_fails_first_with_an_unsupported_numba():
    """The check runs before any module touches Numba's internals."""
    code = (
        "from importlib import metadata\n"
        "real = metadata.version\n"
        "metadata.version = lambda name: '0.70.0' if name == 'numba' else real(name)\n"
        "import numbaspike\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBASPIKE_ANY_NUMBA"}
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert run.returncode != 0
    assert "numbaspike supports numba>=0.68,<0.69" in run.stderr
    assert "Numba 0.70.0 is installed" in run.stderr
