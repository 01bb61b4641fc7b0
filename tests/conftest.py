"""What every test shares: the data sets are found where the library looks or the test is skipped, never
downloaded; and precision is pinned, so that every CPU runs the same arithmetic.

Markers (pyproject.toml lists them):
    fashion_mnist  the test reads the real Fashion-MNIST files; skipped with the reason when they are absent
    bf16           the test trains in bfloat16; skipped on CPUs that would only emulate it
"""

from __future__ import annotations

import pytest

from verydeep import device
from verydeep.data import cifar, fashion_mnist

FASHION_MNIST = fashion_mnist.find(None)  # where the library itself would look: $VERYDEEP_DATA, Debian, the cache
NATIVE_BF16 = device.cpu_has_native_bf16()  # read before the fixtures below pin it

FASHION_MNIST_MISSING = (
    f"Fashion-MNIST is not in {fashion_mnist.DEBIAN_DIR}, $VERYDEEP_DATA or the cache "
    "(apt-get install dataset-fashion-mnist)"
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "fashion_mnist" in item.keywords and FASHION_MNIST is None:
            item.add_marker(pytest.mark.skip(reason=FASHION_MNIST_MISSING))
        if "bf16" in item.keywords and not NATIVE_BF16:
            item.add_marker(pytest.mark.skip(reason="this CPU has no bf16 instructions (AVX512-BF16, AMX)"))


@pytest.fixture(autouse=True)
def never_download(monkeypatch):
    """A test that would fetch a data set fails and says how to mark it, instead of reaching for a network."""

    def refuse(*args, **kwargs):
        pytest.fail("this test reached for a download: mark it @pytest.mark.fashion_mnist, or give it its own files")

    monkeypatch.setattr(fashion_mnist, "download", refuse)
    monkeypatch.setattr(cifar, "download", refuse)


@pytest.fixture(autouse=True)
def cache_in_the_tests_own_folder(monkeypatch, tmp_path_factory):
    """Image folders decoded into memory are cached under $VERYDEEP_CACHE: one of the test session's own."""
    monkeypatch.setenv("VERYDEEP_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(autouse=True)
def train_runs_in_this_process(monkeypatch):
    """`verydeep train` called in a test trains in the test's own process (its output captured, its errors
    raised here) unless the test asks for --procs N: the tests of several processes do."""
    monkeypatch.setenv("VERYDEEP_PROCS", "1")


@pytest.fixture(autouse=True)
def auto_precision_is_fp32(monkeypatch):
    """``precision="auto"`` resolves to fp32 in tests on every CPU (by hiding the CPU's bf16 flags), so that the
    suite checks the same arithmetic on a Zen 4 as on a Cascade Lake; bf16 tests ask for it by name."""
    monkeypatch.setattr(device, "cpu_flags", lambda: frozenset())
