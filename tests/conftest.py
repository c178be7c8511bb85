"""Suite-wide settings.

pytest runs with two workers (`-n 2`) on a 2-core machine: one torch thread per worker uses
both cores without OpenMP threads spinning against each other, which made convolutions
several times slower than one thread here."""

import torch

torch.set_num_threads(1)

# Exports that `effnet predict --runtime onnx` caches go to a throw-away folder, never to the
# user's ~/.cache/effnet.
import os  # noqa: E402
import tempfile  # noqa: E402

os.environ["EFFNET_CACHE"] = tempfile.mkdtemp(prefix="effnet-test-cache-")

import pytest  # noqa: E402


@pytest.fixture
def fashion_mnist() -> None:
    """Skips the test unless Debian's Fashion-MNIST is installed (the real data of the slow tests)."""
    from effnet.data.fashion_mnist import find_root

    try:
        find_root(None)
    except (FileNotFoundError, OSError) as error:
        pytest.skip(f"Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist): {error}")


@pytest.fixture()
def restore_torch_globals():  # type: ignore[no-untyped-def]
    """Tests that train set torch's thread count and determinism; the next test gets them back."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)
