"""Retention policies: ``plums_model.Retention(last=None, every=None, best=None, metric=None,
mode="min", keep=None)``, ``CheckpointCollection.prune(policy)`` and ``Model.save(path,
retention=...)`` (synchronous and in the background).

A policy is the union of its rules: kept are the latest checkpoint (always), the pinned ``keep``
references, the ``last`` N by epoch, every checkpoint whose epoch is a multiple of ``every``, and
the ``best`` N by ``metric(checkpoint)`` (a checkpoint whose metric is None or NaN is kept).
"""

import math
import os

import pytest

import plums_model as pm
from helpers import HASH, write


def collection(epochs):
    """A collection with one checkpoint per epoch of ``epochs`` (reference = epoch, no file)."""
    c = pm.CheckpointCollection()
    for epoch in epochs:
        c.add(pm.Checkpoint(epoch, None, epoch, hash=HASH))
    return c


def ten():
    return collection(range(1, 11))


# ------------------------------------------------------------------------------------------------
# Construction
# ------------------------------------------------------------------------------------------------
def _invalid(field):
    """The exception a refused rule raises: InvalidRetentionError (a ValueError) naming the field."""
    cls = getattr(pm, "InvalidRetentionError", ValueError)
    assert issubclass(cls, ValueError)
    return cls


@pytest.mark.parametrize("kwargs, field, fragment", [
    ({}, "rules", "a retention policy needs at least one of last, every, best or keep"),
    ({"keep": []}, "rules", "a retention policy needs at least one of last, every, best or keep"),
    ({"mode": "max"}, "rules", "a retention policy needs at least one of last, every, best or keep"),
    ({"last": 0}, "last", "`last`: must be at least 1"),
    ({"last": -3}, "last", "`last`: must be at least 1"),
    ({"every": 0}, "every", "`every`: must be at least 1, got 0"),
    ({"every": -2}, "every", "`every`: must be at least 1, got -2"),
    ({"best": 0, "metric": len}, "best", "`best`: must be at least 1"),
    ({"last": 1, "mode": "median"}, "mode", '`mode`: expected min or max, got "median"'),
])
def test_a_rule_the_core_refuses_is_a_value_error_naming_the_field(kwargs, field, fragment):
    with pytest.raises(_invalid(field)) as info:
        pm.Retention(**kwargs)
    message = str(info.value)
    assert message.startswith("invalid retention policy: ")
    assert fragment in message
    if hasattr(info.value, "field"):
        assert info.value.field == field


def test_best_without_a_metric_is_refused():
    with pytest.raises(ValueError, match=r"best=N needs a metric: metric\(checkpoint\) -> float"):
        pm.Retention(best=2)


def test_a_metric_without_best_is_refused():
    with pytest.raises(ValueError, match="metric is only used with best=N: give best too"):
        pm.Retention(last=2, metric=lambda c: 1.0)


def test_a_metric_that_is_not_callable_is_a_type_error():
    with pytest.raises(TypeError, match=r"metric must be a callable: metric\(checkpoint\) -> float or None"):
        pm.Retention(best=1, metric=3.5)


@pytest.mark.parametrize("pin", [1.5, None, True])
def test_a_pin_that_is_not_a_reference_is_refused(pin):
    with pytest.raises(ValueError, match="invalid checkpoint reference .*: a reference is an int or a str"):
        pm.Retention(keep=[pin])


def test_attributes():
    def loss(checkpoint):
        return 0.0

    policy = pm.Retention(last=2, every=5, best=1, metric=loss, mode="max", keep=["best", 3])
    assert (policy.last, policy.every, policy.best, policy.mode) == (2, 5, 1, "max")
    assert policy.metric is loss
    assert list(policy.keep) == ["best", 3]
    plain = pm.Retention(last=3)
    assert (plain.last, plain.every, plain.best, plain.metric, plain.mode) == (3, None, None, None, "min")
    assert list(plain.keep) == []


@pytest.mark.parametrize("keep, pins", [
    ("best", ["best"]),            # one str: one pin, not its characters
    (7, [7]),                      # one int
    (["a", 2], ["a", 2]),          # a list
    (("a", 2), ["a", 2]),          # a tuple
    ((r for r in ["x", "y"]), ["x", "y"]),  # any iterable
])
def test_keep_is_one_reference_or_an_iterable_of_them(keep, pins):
    assert list(pm.Retention(keep=keep).keep) == pins


def test_repr():
    def loss(checkpoint):
        return 0.0

    assert repr(pm.Retention(last=3)) == "Retention(last=3)"
    assert repr(pm.Retention(every=2, keep="best")) == "Retention(every=2, keep=('best',))"
    assert repr(pm.Retention(best=2, metric=loss, mode="max")) == \
        'Retention(best=2, metric={!r}, mode="max")'.format(loss)
    assert repr(pm.Retention(last=1, every=4, best=2, metric=loss)) == \
        'Retention(last=1, every=4, best=2, metric={!r}, mode="min")'.format(loss)


def test_repr_of_several_pins_is_a_tuple():
    assert repr(pm.Retention(keep=("a", 1))) == "Retention(keep=('a', 1))"


def test_retention_is_immutable():
    policy = pm.Retention(last=3)
    with pytest.raises(AttributeError):
        policy.last = 4
    assert policy.last == 3


# ------------------------------------------------------------------------------------------------
# prune
# ------------------------------------------------------------------------------------------------
def test_prune_returns_the_removed_references_in_order_and_keeps_the_union_of_the_rules():
    c = ten()
    removed = c.prune(pm.Retention(last=2, every=5, keep=1))
    assert removed == [2, 3, 4, 6, 7, 8]
    assert list(c.keys()) == [1, 5, 9, 10]
    assert c.latest == 10
    # Applied again, it keeps everything: pruning is idempotent.
    assert c.prune(pm.Retention(last=2, every=5, keep=1)) == []
    assert list(c.keys()) == [1, 5, 9, 10]


def test_the_latest_checkpoint_is_always_kept():
    c = pm.CheckpointCollection()
    c.add(pm.Checkpoint("late", None, 5, hash=HASH))
    c.add(pm.Checkpoint("early", None, 1, hash=HASH))  # added last: the latest, lowest epoch
    assert c.latest == "early"
    assert c.prune(pm.Retention(last=1)) == []
    assert list(c.keys()) == ["late", "early"]
    c = ten()
    assert c.prune(pm.Retention(keep="nothing-like-it")) == list(range(1, 10))
    assert list(c.keys()) == [10] and c.latest == 10


def test_last_keeps_the_highest_epochs():
    c = ten()
    assert c.prune(pm.Retention(last=3)) == [1, 2, 3, 4, 5, 6, 7]
    assert list(c.keys()) == [8, 9, 10]
    c = ten()
    assert c.prune(pm.Retention(last=50)) == []
    assert len(c) == 10


def test_last_ranks_by_epoch_not_by_insertion():
    c = collection([5, 9, 1, 7, 3])
    # latest is 3 (the last added); the 2 highest epochs are 9 and 7.
    assert c.prune(pm.Retention(last=2)) == [5, 1]
    assert list(c.keys()) == [9, 7, 3]


def test_every_keeps_the_multiples():
    c = collection(range(0, 13))
    assert c.prune(pm.Retention(every=4)) == [1, 2, 3, 5, 6, 7, 9, 10, 11]
    assert list(c.keys()) == [0, 4, 8, 12]  # 0 is a multiple of 4


@pytest.mark.parametrize("keep, pinned", [
    ("best", ["best"]),
    (3, [3]),
    ([3, "best"], [3, "best"]),
    ({3, 5}, [3, 5]),
])
def test_pinned_references_are_kept(keep, pinned):
    c = ten()
    c.add(pm.Checkpoint("best", None, 4, hash=HASH))
    c.add(pm.Checkpoint(11, None, 10, hash=HASH))  # the latest
    order = list(range(1, 11)) + ["best", 11]
    kept = set(pinned) | {11}
    assert c.prune(pm.Retention(keep=keep)) == [r for r in order if r not in kept]
    assert list(c.keys()) == [r for r in order if r in kept]


def test_an_unknown_pin_is_not_an_error():
    c = ten()
    assert c.prune(pm.Retention(keep=["nope", 3])) == [1, 2, 4, 5, 6, 7, 8, 9]
    assert list(c.keys()) == [3, 10]


def test_best_with_mode_min_keeps_the_smallest_metrics():
    c = ten()
    calls = []

    def loss(checkpoint):
        calls.append(checkpoint.name)
        assert isinstance(checkpoint, pm.Checkpoint) and checkpoint.hash == HASH
        return abs(checkpoint.epoch - 4.2)

    assert c.prune(pm.Retention(best=2, metric=loss)) == [1, 2, 3, 6, 7, 8, 9]
    assert list(c.keys()) == [4, 5, 10]
    assert sorted(calls) == list(range(1, 11))  # once per checkpoint


def test_best_with_mode_max_keeps_the_largest_metrics():
    c = ten()
    accuracy = {1: 0.5, 2: 0.9, 3: 0.7, 4: 0.95, 5: 0.1, 6: 0.2, 7: 0.3, 8: 0.4, 9: 0.6, 10: 0.0}
    assert c.prune(pm.Retention(best=2, metric=lambda ck: accuracy[ck.name], mode="max")) == [1, 3, 5, 6, 7, 8, 9]
    assert list(c.keys()) == [2, 4, 10]


def test_best_ties_go_to_the_higher_epoch():
    c = ten()
    assert c.prune(pm.Retention(best=2, metric=lambda ck: abs(ck.epoch - 4))) == [1, 2, 3, 6, 7, 8, 9]
    assert list(c.keys()) == [4, 5, 10]  # 3 and 5 tie at 1: 5 wins


@pytest.mark.parametrize("missing", [None, float("nan")])
def test_a_checkpoint_without_a_metric_is_kept_and_takes_no_place(missing):
    c = ten()

    def loss(checkpoint):
        return missing if checkpoint.epoch in (2, 3) else float(checkpoint.epoch)

    assert c.prune(pm.Retention(best=1, metric=loss)) == [4, 5, 6, 7, 8, 9]
    assert list(c.keys()) == [1, 2, 3, 10]


def test_infinities_are_values():
    c = collection([1, 2, 3])
    values = {1: math.inf, 2: -math.inf, 3: 0.0}
    c.add(pm.Checkpoint(4, None, 4, hash=HASH))
    values[4] = 5.0
    assert c.prune(pm.Retention(best=1, metric=lambda ck: values[ck.name])) == [1, 3]
    assert list(c.keys()) == [2, 4]


def test_a_metric_that_raises_propagates_and_nothing_is_removed():
    c = ten()

    class Boom(Exception):
        pass

    def metric(checkpoint):
        if checkpoint.epoch == 7:
            raise Boom("no loss recorded for epoch 7")
        return 1.0

    with pytest.raises(Boom, match="no loss recorded for epoch 7"):
        c.prune(pm.Retention(best=1, metric=metric, last=1))
    assert list(c.keys()) == list(range(1, 11))
    assert c.latest == 10


@pytest.mark.parametrize("value, shown", [("x", "'x'"), ([1], "[1]"), (object, "<class 'object'>")])
def test_a_metric_returning_a_non_number_is_a_type_error_naming_the_checkpoint(value, shown):
    c = ten()
    c.add(pm.Checkpoint("best", None, 3, hash=HASH))

    def metric(checkpoint):
        return value if checkpoint.name == "best" else 1.0

    with pytest.raises(TypeError) as info:
        c.prune(pm.Retention(best=1, metric=metric))
    assert str(info.value) == \
        'the retention metric returned {} for checkpoint "best": expected a number or None'.format(shown)
    assert len(c) == 11


def test_a_non_number_for_an_int_reference_names_it():
    c = ten()
    with pytest.raises(TypeError, match="the retention metric returned 'x' for checkpoint 1: expected a number"):
        c.prune(pm.Retention(best=1, metric=lambda ck: "x"))


def test_prune_of_an_empty_collection_removes_nothing():
    c = pm.CheckpointCollection()
    assert c.prune(pm.Retention(last=1)) == []
    assert c.prune(pm.Retention(best=1, metric=lambda ck: 1 / 0)) == []  # never called


def test_prune_takes_a_retention_only():
    with pytest.raises(TypeError):
        ten().prune("last=3")
    with pytest.raises(TypeError):
        ten().prune(None)


# ------------------------------------------------------------------------------------------------
# Model.save(path, retention=...)
# ------------------------------------------------------------------------------------------------
def new_model(root, model_id="ret-1"):
    config = write(root / "inputs" / "config.py", "# configuration\nlr = 0.1\n")
    model = pm.Model("trainer", "py_pa", "1.0.0", "retention", model_id, str(config), {"classes": 3})
    model.register_training_start(0)
    return model


def next_epoch(model, root, epoch):
    model.register_epoch(epoch)
    path = write(root / "weights" / "e{}.pt".format(epoch), "weights of epoch {}\n".format(epoch))
    model.add_checkpoint(pm.Checkpoint(epoch, str(path), epoch))


def checkpoint_files(folder):
    return sorted(os.listdir(str(folder / "data" / "checkpoints")))


@pytest.mark.parametrize("background", [False, True], ids=["sync", "background"])
def test_a_training_loop_with_retention_keeps_exactly_the_last_three(tmp_path, ref, background):
    model = new_model(tmp_path)
    folder = tmp_path / "model"
    policy = pm.Retention(last=3)
    for epoch in range(1, 13):
        next_epoch(model, tmp_path, epoch)
        handle = model.save(folder, retention=policy, background=background)
        assert (handle is None) is (not background)
        # The collection in memory is pruned at the call.
        assert list(model.checkpoint_collection.keys()) == list(range(max(1, epoch - 2), epoch + 1))
    model.wait_for_saves()
    assert checkpoint_files(folder) == ["e10.pt", "e11.pt", "e12.pt"]
    metadata = pm.validate(str(folder), strict=True)["model"]["training"]
    assert list(metadata["checkpoints"]) == [10, 11, 12]
    assert metadata["latest"] == 12 and metadata["latest_epoch"] == 12
    loaded = ref.Model.load(str(folder))
    assert sorted(loaded.checkpoint_collection.keys()) == [10, 11, 12]
    assert loaded.checkpoint_collection.latest == 12
    ours = pm.Model.load(folder)
    assert list(ours.checkpoint_collection.keys()) == [10, 11, 12]


def test_retention_with_a_metric_in_a_training_loop(tmp_path):
    model = new_model(tmp_path)
    folder = tmp_path / "model"
    losses = {1: 0.9, 2: 0.5, 3: 0.7, 4: 0.2, 5: 0.6, 6: 0.8}
    policy = pm.Retention(best=2, metric=lambda ck: losses[ck.epoch])
    for epoch in range(1, 7):
        next_epoch(model, tmp_path, epoch)
        model.save(folder, retention=policy)
    assert list(model.checkpoint_collection.keys()) == [2, 4, 6]  # the two best, and the latest
    assert list(pm.validate(str(folder), strict=True)["model"]["training"]["checkpoints"]) == [2, 4, 6]
    assert checkpoint_files(folder) == ["e2.pt", "e4.pt", "e6.pt"]


def test_retention_removes_the_files_it_prunes_but_keeps_foreign_files(tmp_path):
    model = new_model(tmp_path)
    folder = tmp_path / "model"
    for epoch in range(1, 5):
        next_epoch(model, tmp_path, epoch)
        model.save(folder)
    write(folder / "notes.txt", "the trainer's own notes\n")
    write(folder / "data" / "extra.txt", "more\n")
    write(folder / "data" / "checkpoints" / "foreign.bin", "not PMF's\n")
    assert checkpoint_files(folder) == ["e1.pt", "e2.pt", "e3.pt", "e4.pt", "foreign.bin"]
    model.save(folder, retention=pm.Retention(last=2))
    assert checkpoint_files(folder) == ["e3.pt", "e4.pt", "foreign.bin"]
    assert (folder / "notes.txt").read_text() == "the trainer's own notes\n"
    assert (folder / "data" / "extra.txt").read_text() == "more\n"
    assert list(pm.validate(str(folder), strict=True)["model"]["training"]["checkpoints"]) == [3, 4]


def test_a_metric_that_raises_during_save_saves_nothing_and_removes_nothing(tmp_path):
    model = new_model(tmp_path)
    folder = tmp_path / "model"
    for epoch in (1, 2, 3):
        next_epoch(model, tmp_path, epoch)
    model.save(folder)
    next_epoch(model, tmp_path, 4)
    before = (folder / "metadata.yaml").read_bytes()

    def metric(checkpoint):
        raise KeyError("no metric for {}".format(checkpoint.name))

    for background in (False, True):
        with pytest.raises(KeyError, match="no metric for 1"):
            model.save(folder, retention=pm.Retention(best=1, metric=metric), background=background)
        assert list(model.checkpoint_collection.keys()) == [1, 2, 3, 4]
    model.wait_for_saves()
    assert (folder / "metadata.yaml").read_bytes() == before
    assert checkpoint_files(folder) == ["e1.pt", "e2.pt", "e3.pt"]


def test_retention_must_be_a_retention(tmp_path):
    model = new_model(tmp_path)
    with pytest.raises(TypeError, match="retention must be a plums_model.Retention"):
        model.save(tmp_path / "model", retention={"last": 3})
    with pytest.raises(TypeError, match="retention must be a plums_model.Retention"):
        model.save(tmp_path / "model", retention=3, background=True)
    assert not (tmp_path / "model").exists()
