"""A fixture for the metric tests: one torch thread and one BLAS thread.

The tests share two cores with other jobs; under that load, two threads per
process oversubscribe the cores and run several times slower."""

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):  # BLAS too: clean-fid's sqrtm of 2048x2048 matrices
        yield
    torch.set_num_threads(before)
