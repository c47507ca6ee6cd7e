"""Test-suite set-up: Triton kernels run in Triton's CPU interpreter when there is no GPU.

``TRITON_INTERPRET`` must be set before ``triton.jit`` decorates the kernels, i.e. before
``irkernels`` is imported, hence here.
"""
import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

HAS_CUDA = torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    skip_cuda = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords and not HAS_CUDA:
            item.add_marker(skip_cuda)


@pytest.fixture
def kernel_device() -> torch.device:
    """Where the Triton kernels run in this session: CUDA if present, else CPU (interpreter)."""
    return torch.device("cuda" if HAS_CUDA else "cpu")


@pytest.fixture(scope="module")
def one_thread():
    """For modules of tiny tensors (``pytestmark = pytest.mark.usefixtures("one_thread")``): on
    the shared 2-core CI box intra-op threads spin against other processes and cost 3× more than
    they gain (measured on the TripleD tests: 61 s with 2 threads, 19 s with 1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def photos():
    """IDC tests: three 96×128 colour crops of the embedded photos (12 HR patches of 32 each at ×4)."""
    import numpy as np

    from irkernels.data import Image, sample_images

    return [Image(im.name, np.ascontiguousarray(im.pixels[100:196, 100:228])) for im in sample_images(limit=3)]


@pytest.fixture(scope="module")
def nets():
    """IDC tests: one tiny seeded EDSR as both feature extractor and teacher."""
    from irkernels.idc.pipeline import Networks
    from irkernels.models.edsr import EDSR

    torch.manual_seed(0)
    net = EDSR(4, n_resblocks=1, n_feats=8)
    return Networks(net, net, {"feature_extractor": "tiny test net"})
