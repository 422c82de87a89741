"""The MNIST-format (IDX) reader, on small files written here (the Debian package is not needed)."""

from __future__ import annotations

import gzip
import json

import pytest
import torch

from filterprune.cli import main
from filterprune.tasks.idx import (
    IDXConfig,
    IDXFormatError,
    find_idx_files,
    idx_datasets,
    read_idx,
    resolve_idx_root,
)
from tiny_idx import idx_bytes, write_set


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.int32, torch.float32])
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trips_every_type(tmp_path, dtype, gz):
    values = torch.tensor([[1, -2, 300], [4, 5, -6]]) if dtype != torch.uint8 else None
    tensor = (values if values is not None else torch.tensor([[1, 2, 255], [0, 7, 9]])).to(dtype)
    if dtype == torch.float32:
        tensor = tensor / 3
    data = idx_bytes(tensor)
    path = tmp_path / ("x.idx.gz" if gz else "x.idx")
    path.write_bytes(gzip.compress(data) if gz else data)
    out = read_idx(path)
    assert out.dtype == dtype
    assert torch.equal(out, tensor)


def test_gzip_is_detected_from_the_content_not_the_name(tmp_path):
    path = tmp_path / "plain-name-idx1-ubyte"
    path.write_bytes(gzip.compress(idx_bytes(torch.arange(5, dtype=torch.uint8))))
    assert read_idx(path).tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (b"\x12\x34\x08\x01" + b"\x00" * 8, "magic number"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "type byte"),
        (b"\x00\x00\x08\x03\x00\x00", "sizes"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02", "data length"),
        (b"\x00\x00", "header"),
        (b"\x1f\x8b\x08\x00garbage", "gzip stream"),
    ],
)
def test_malformed_files_name_the_file_and_the_field(tmp_path, payload, field):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(payload)
    with pytest.raises(IDXFormatError) as info:
        read_idx(path)
    message = str(info.value)
    assert str(path) in message and field in message
    assert ";" in message  # followed by what to do


def test_find_idx_files_pairs_the_splits(tmp_path):
    root = write_set(tmp_path / "set", gz=False)
    files = find_idx_files(root)
    assert files["train"][0].name == "train-images-idx3-ubyte"
    assert files["test"][1].name == "t10k-labels-idx1-ubyte"
    (root / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(IDXFormatError, match="test images without test labels"):
        find_idx_files(root)
    with pytest.raises(IDXFormatError, match="does not exist"):
        find_idx_files(tmp_path / "missing")


def test_labels_that_do_not_match_the_images_are_refused(tmp_path):
    root = write_set(tmp_path / "set")
    (root / "train-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(torch.zeros(3, dtype=torch.uint8)))
    )
    with pytest.raises(IDXFormatError, match=r"train-labels.*count: 3 labels for 40 images"):
        idx_datasets(root)


def test_datasets_split_train_from_validation_and_keep_test_apart(tmp_path):
    root = write_set(tmp_path / "set")
    train, val, test = idx_datasets(root, IDXConfig(val_fraction=0.25, seed=3))
    assert (len(train), len(val), len(test)) == (30, 10, 10)
    pixels = lambda ds: {bytes(ds.images[i].flatten().tolist()) for i in range(len(ds))}  # noqa: E731
    assert not pixels(train) & pixels(val)
    again = idx_datasets(root, IDXConfig(val_fraction=0.25, seed=3))[1]
    assert torch.equal(again.images, val.images)
    image, label = train[0]
    assert image.shape == (1, 32, 32) and image.dtype == torch.float32
    assert label.dtype == torch.int64
    # the class is the bright row: after padding (13 px above, 13 to the left) it is row 13 + label
    row = 13 + int(label)
    assert torch.all(image[0, row, 13:18] == 1.0)
    assert torch.all(image[0, :13] == -1.0)  # black padding in [-1, 1]


def test_channels_and_resize_adapt_to_the_model(tmp_path):
    root = write_set(tmp_path / "set")
    rgb = idx_datasets(root, IDXConfig(channels=3, resize="bilinear", image_size=12))[0]
    image, _ = rgb[0]
    assert image.shape == (3, 12, 12)
    assert torch.equal(image[0], image[2])
    native = idx_datasets(root, IDXConfig(image_size=None, normalize=False))[0]
    image, label = native[0]
    assert image.shape == (1, 6, 5)
    assert torch.all(image[0, int(label)] == 1.0)
    with pytest.raises(IDXFormatError, match="padding cannot shrink.*resize='bilinear'"):
        idx_datasets(root, IDXConfig(image_size=4))
    with pytest.raises(IDXFormatError, match="channels"):
        IDXConfig(channels=2)


def test_fashion_mnist_is_found_through_the_environment(tmp_path, monkeypatch):
    root = write_set(tmp_path / "fm")
    monkeypatch.setenv("FILTERPRUNE_FASHION_MNIST", str(root))
    assert resolve_idx_root("fashion-mnist") == root
    train = idx_datasets("fashion-mnist")[0]
    assert train.classes[0] == "T-shirt/top"
    monkeypatch.setenv("FILTERPRUNE_FASHION_MNIST", str(tmp_path / "nowhere"))
    monkeypatch.setattr("filterprune.tasks.idx.FASHION_MNIST_DIRS", (str(tmp_path / "none"),))
    with pytest.raises(IDXFormatError, match="apt-get install dataset-fashion-mnist"):
        resolve_idx_root("fashion-mnist")


def test_cli_trains_on_an_idx_folder_with_one_channel(tmp_path, capsys):
    root = write_set(tmp_path / "set", n_train=48)
    out = tmp_path / "base"
    args = ["train", "--task", "classify", "--model", "resnet18", "--model-arg", "width=0.0625",
            "--model-arg", "stem=cifar", "--data", str(root), "--image-size", "8",
            "--val-fraction", "0.25", "--steps", "2", "--batch-size", "8", "--out", str(out), "-q"]  # fmt: skip
    assert main(args) == 0
    info = json.loads((out / "model.json").read_text())
    assert info["model_args"]["in_channels"] == 1
    assert info["model_args"]["num_classes"] == 4
    assert info["input_shape"] == [1, 1, 8, 8]
    assert info["data"]["data"] == str(root)
    code = main(["train", *args[1:-3], "--data-arg", "colour=1", "--out", str(tmp_path / "b")])
    assert code != 0
    assert "--data-arg colour: not an option of MNIST-format data" in capsys.readouterr().err
