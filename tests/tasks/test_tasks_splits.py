"""split_by_object_id keeps every car on one side."""

import pytest
import torch

from filterprune.tasks import split_by_object_id
from filterprune.tasks.splits import object_key


def _carvana_names(num_cars: int, views: int = 16) -> list[str]:
    return [
        f"{car * 7919:012x}_{view:02d}" for car in range(num_cars) for view in range(1, views + 1)
    ]


def test_object_key_parses_carvana_names():
    assert object_key("0cdf5b5d0ce1_01") == "0cdf5b5d0ce1"
    assert object_key("car00012_03") == "car00012"
    assert object_key(torch.tensor(7)) == 7
    assert object_key("plain") == "plain"


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_no_car_on_both_sides_and_fraction_respected(seed):
    names = _carvana_names(25)
    train, val = split_by_object_id(names, val_fraction=0.2, seed=seed)
    assert sorted(train + val) == list(range(len(names)))
    train_cars = {object_key(names[i]) for i in train}
    val_cars = {object_key(names[i]) for i in val}
    assert train_cars.isdisjoint(val_cars)
    assert len(val_cars) == 5  # 20 % of 25 equal-sized cars
    assert len(val) == 5 * 16


def test_uneven_groups_and_integer_ids():
    ids = torch.tensor([0] * 3 + [1] * 10 + [2] * 5 + [3] * 7 + [4] * 2 + [5] * 8 + [6] * 5)
    for seed in range(10):
        train, val = split_by_object_id(ids, val_fraction=0.3, seed=seed)
        assert set(ids[train].tolist()).isdisjoint(ids[val].tolist())
        assert val and train
        assert 0.1 <= len(val) / len(ids) <= 0.5


def test_split_is_deterministic_per_seed():
    names = _carvana_names(30, views=4)
    assert split_by_object_id(names, val_fraction=0.25, seed=5) == split_by_object_id(
        names, 0.25, 5
    )
    splits = {tuple(split_by_object_id(names, val_fraction=0.25, seed=s)[1]) for s in range(5)}
    assert len(splits) > 1


def test_edge_cases_and_errors():
    names = _carvana_names(4, views=2)
    train, val = split_by_object_id(names, val_fraction=0.0, seed=0)
    assert val == [] and train == list(range(8))
    with pytest.raises(ValueError, match="val_fraction must be in"):
        split_by_object_id(names, val_fraction=1.0)
    with pytest.raises(ValueError, match="at least 2 objects"):
        split_by_object_id(["car_01", "car_02"], val_fraction=0.5)
    # Even a tiny fraction sends one whole car to validation, and one always stays in training.
    train, val = split_by_object_id(names, val_fraction=0.01, seed=0)
    assert len(val) == 2
    train, val = split_by_object_id(names, val_fraction=0.99, seed=0)
    assert len(train) == 2
