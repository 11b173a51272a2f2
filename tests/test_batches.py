"""The loop's batch samplers (bench/batches.py) and how `budget.sampler` enters a cell's id.

The epoch sampler is defined by the references' loaders: shuffled passes over
the training set without replacement (Chainer's iterators in Miyato &
Koyama's sngan_projection, PyTorch's DataLoader(shuffle=True) elsewhere)."""

import pytest
import torch

from bench import train as loop
from bench.batches import EpochBatches, ReplacementBatches, batch_sampler
from bench.data import Split
from bench.spec import load_sweep


def _stream(sampler, batches):
    return torch.cat([sampler() for _ in range(batches)]).tolist()


@pytest.mark.parametrize("n, batch_size", [(10, 4), (3, 7), (6, 6)])
def test_every_epoch_is_a_permutation_and_a_batch_runs_on_into_the_next(n, batch_size):
    sampler = EpochBatches(n, batch_size, torch.Generator().manual_seed(0))
    batches = [sampler().tolist() for _ in range(6)]
    assert all(len(b) == batch_size for b in batches)  # the batch that ends an epoch is filled from the next one
    stream = [i for b in batches for i in b]
    epochs = [stream[k : k + n] for k in range(0, len(stream) - n + 1, n)]
    assert len(epochs) >= 2 and all(sorted(e) == list(range(n)) for e in epochs)  # each image once per epoch
    assert len({tuple(e) for e in epochs}) > 1  # a fresh shuffle each epoch


def test_the_replacement_sampler_is_the_draw_old_results_were_made_with():
    """A config without budget.sampler must compute what it did before the key existed."""
    sampler = batch_sampler({"batch_size": 5}, 9, torch.Generator().manual_seed(3))
    assert isinstance(sampler, ReplacementBatches)
    before = torch.Generator().manual_seed(3)
    assert _stream(sampler, 4) == torch.cat([torch.randint(9, (5,), generator=before) for _ in range(4)]).tolist()
    assert isinstance(batch_sampler({"batch_size": 5, "sampler": "epoch"}, 9, torch.Generator()), EpochBatches)


def test_the_epoch_sampler_resumes_its_stream_from_its_state():
    gen = torch.Generator().manual_seed(1)
    sampler = EpochBatches(10, 4, gen)
    _stream(sampler, 3)  # 12 drawn: 2 into the second epoch
    state, gen_state = sampler.state(), gen.get_state()
    rest = _stream(sampler, 5)
    again_gen = torch.Generator()
    again_gen.set_state(gen_state)
    again = EpochBatches(10, 4, again_gen)
    again.load(state)
    assert _stream(again, 5) == rest
    with pytest.raises(ValueError, match="does not fit 11 images"):
        EpochBatches(11, 4, torch.Generator()).load(state)


class Recorder:
    """The least a method needs for bench.train.train: it records the images it is handed."""

    device = torch.device("cpu")

    def batch_rows(self, y):  # every row once, as bench.method.Method
        return None

    def __init__(self, stop_at=None):
        self.seen, self.stop_at = [], stop_at

    def begin(self, data, fresh):
        pass

    def train_step(self, next_batch):
        self.seen.append(next_batch()[0].flatten().long().tolist())
        if len(self.seen) == self.stop_at:
            loop.STOP.set()
        return {"loss": torch.tensor(0.0)}

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def _train(method, config, folder):
    folder.mkdir(parents=True, exist_ok=True)
    data = Split(torch.arange(10.0).view(10, 1), torch.zeros(10), [10])
    return loop.train(method, data, config, {"log_every": 1, "checkpoint_every": 100}, folder)


def test_the_loop_draws_epochs_and_a_resumed_run_draws_what_an_uninterrupted_one_does(tmp_path):
    config = {"seed": 0, "budget": {"steps": 7, "batch_size": 4, "sampler": "epoch"}}
    whole = Recorder()
    _train(whole, config, tmp_path / "whole")
    stream = [i for b in whole.seen for i in b]
    assert sorted(stream[:10]) == sorted(stream[10:20]) == list(range(10))
    first = Recorder(stop_at=4)  # stopped after step 4, mid-epoch: the checkpoint holds the epoch's order
    try:
        with pytest.raises(loop.Interrupted):
            _train(first, config, tmp_path / "cut")
    finally:
        loop.STOP.clear()
    second = Recorder()
    _train(second, config, tmp_path / "cut")
    assert first.seen + second.seen == whole.seen
    legacy = Recorder()  # no key: the draw with replacement of the results made before it
    _train(legacy, {"seed": 0, "budget": {"steps": 7, "batch_size": 4}}, tmp_path / "legacy")
    gen = torch.Generator().manual_seed(0)
    assert legacy.seen == [torch.randint(10, (4,), generator=gen).tolist() for _ in range(7)]


SWEEP = """
name: s
matrix: {method: [gan, ccgan-svdl], dataset: [circle], imbalance: [1], seed: [0]}
defaults: {budget: {steps: 10}, arch: {name: ccgan-mlp}}
"""


def test_new_cells_name_the_epoch_sampler_and_replacement_keeps_the_old_ids(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(SWEEP.replace("ccgan-mlp", "mlp").replace(", ccgan-svdl", "").replace("circle", "ring"))
    new = load_sweep(path).cells[0]
    assert new["config"]["budget"]["sampler"] == "epoch"
    path.write_text(path.read_text().replace("steps: 10", "steps: 10, sampler: replacement"))
    old = load_sweep(path).cells[0]
    assert "sampler" not in old["config"]["budget"] and old["id"] != new["id"]
    # what the id was before the key existed: the same config without it
    from bench.spec import cell_id

    legacy = {**new["config"], "budget": {k: v for k, v in new["config"]["budget"].items() if k != "sampler"}}
    assert cell_id(legacy) == old["id"]


def test_rows_that_draw_their_own_batches_keep_their_ids(tmp_path):
    """CcGAN draws vicinal batches (Method.loop_batches False): the sampler changes nothing there."""
    path = tmp_path / "s.yaml"
    path.write_text(SWEEP.replace("gan, ccgan-svdl", "ccgan-svdl"))
    cell = load_sweep(path).cells[0]
    assert "sampler" not in cell["config"]["budget"]
    path.write_text(path.read_text().replace("steps: 10", "steps: 10, sampler: replacement"))
    assert load_sweep(path).cells[0]["id"] == cell["id"]

