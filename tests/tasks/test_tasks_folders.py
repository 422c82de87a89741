"""Folder datasets on files written to tmp_path, and their error messages."""

import pytest
import torch
from torch.utils.data import DataLoader

from filterprune.tasks import CarvanaDataset, ImageFolderDataset

np = pytest.importorskip("numpy")
Image = pytest.importorskip("PIL.Image")


def _save_rgb(path, color, size=(12, 10)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def _save_mask(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)


@pytest.fixture
def two_classes(tmp_path):
    for i in range(3):
        _save_rgb(tmp_path / "dog" / f"d{i}.png", (255, 0, 0), size=(12, 10))
    for i in range(2):
        _save_rgb(tmp_path / "cat" / f"c{i}.jpg", (0, 0, 255), size=(20, 20))
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    return tmp_path


def test_image_folder_two_classes(two_classes):
    ds = ImageFolderDataset(two_classes, image_size=16)
    assert ds.classes == ["cat", "dog"] and ds.class_to_idx == {"cat": 0, "dog": 1}
    assert len(ds) == 5
    assert [label for _, label in ds.samples] == [0, 0, 1, 1, 1]
    image, label = ds[0]
    assert image.shape == (3, 16, 16) and image.dtype == torch.float32 and label == 0
    assert image[2].mean() > 0.9 and image[0].mean() < 0.1  # blue cat
    images, labels = next(iter(DataLoader(ds, batch_size=5)))
    assert images.shape == (5, 3, 16, 16) and labels.tolist() == [0, 0, 1, 1, 1]
    assert ImageFolderDataset(two_classes, image_size=(8, 4))[4][0].shape == (3, 8, 4)


def test_image_folder_flip_augmentation(tmp_path):
    array = np.zeros((4, 6, 3), dtype=np.uint8)
    array[:, :2] = 255  # left part white
    (tmp_path / "a").mkdir()
    Image.fromarray(array).save(tmp_path / "a" / "x.png")
    plain = ImageFolderDataset(tmp_path, image_size=(4, 6))[0][0]
    ds = ImageFolderDataset(tmp_path, image_size=(4, 6), augment=True)
    torch.manual_seed(0)
    seen = {bool(torch.equal(ds[0][0], plain)) for _ in range(20)}
    flips = [ds[0][0] for _ in range(20)]
    assert seen == {True, False}
    assert all(torch.equal(f, plain) or torch.equal(f, plain.flip(-1)) for f in flips)


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageFolderDataset(tmp_path / "missing", image_size=8)
    with pytest.raises(ValueError, match="is empty"):
        ImageFolderDataset(tmp_path, image_size=8)
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(ValueError, match="empty_class.*holds no images"):
        ImageFolderDataset(tmp_path, image_size=8)
    (tmp_path / "empty_class" / "broken.png").write_bytes(b"definitely not a png")
    ds = ImageFolderDataset(tmp_path, image_size=8)
    with pytest.raises(OSError, match="broken.png"):
        ds[0]
    with pytest.raises(ValueError, match="image_size"):
        ImageFolderDataset(tmp_path, image_size=0)


@pytest.fixture
def carvana(tmp_path):
    mask = np.zeros((8, 10), dtype=np.uint8)
    mask[2:6, 3:9] = 255
    for car in ("0cdf5b5d0ce1", "fff9b3a5373f"):
        for view in ("01", "02"):
            _save_rgb(tmp_path / "train" / f"{car}_{view}.jpg", (200, 100, 50), size=(10, 8))
            _save_mask(tmp_path / "train_masks" / f"{car}_{view}_mask.gif", mask)
    return tmp_path, torch.from_numpy(mask / 255.0).float()


def test_carvana_pairs_gif_masks(carvana):
    root, expected = carvana
    ds = CarvanaDataset(root / "train", root / "train_masks")
    assert ds.ids == ["0cdf5b5d0ce1_01", "0cdf5b5d0ce1_02", "fff9b3a5373f_01", "fff9b3a5373f_02"]
    image, mask = ds[1]
    assert image.shape == (3, 8, 10) and mask.shape == (1, 8, 10)
    assert torch.equal(mask[0], expected)
    half_image, half_mask = CarvanaDataset(root / "train", root / "train_masks", scale=0.5)[0]
    assert half_image.shape == (3, 4, 5) and half_mask.shape == (1, 4, 5)
    assert set(half_mask.unique().tolist()) <= {0.0, 1.0}
    both = CarvanaDataset(root / "train", root / "train_masks", scale=1.0, image_size=6)
    assert both[0][0].shape == (3, 6, 6)  # scale=1.0 is the neutral default
    fixed = CarvanaDataset(root / "train", root / "train_masks", image_size=16)[0]
    assert fixed[0].shape == (3, 16, 16) and fixed[1].shape == (1, 16, 16)
    flipped = CarvanaDataset(root / "train", root / "train_masks", augment=True)
    torch.manual_seed(0)
    masks = [flipped[0][1] for _ in range(20)]
    assert any(torch.equal(m[0], expected.flip(-1)) for m in masks)
    assert any(torch.equal(m[0], expected) for m in masks)


def test_carvana_png_masks_with_zero_one_values(tmp_path):
    _save_rgb(tmp_path / "img" / "abc_01.png", (0, 0, 0), size=(4, 3))
    _save_mask(tmp_path / "masks" / "abc_01_mask.png", [[0, 1, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]])
    _, mask = CarvanaDataset(tmp_path / "img", tmp_path / "masks")[0]
    assert mask.sum().item() == 3.0 and mask[0, 0, 1].item() == 1.0


def test_carvana_errors(carvana):
    root, _ = carvana
    _save_rgb(root / "train" / "deadbeef0000_03.jpg", (0, 0, 0))
    with pytest.raises(FileNotFoundError, match="deadbeef0000_03.jpg.*has no mask"):
        CarvanaDataset(root / "train", root / "train_masks")
    with pytest.raises(FileNotFoundError, match="masks_dir"):
        CarvanaDataset(root / "train", root / "nope")
    with pytest.raises(ValueError, match="not both"):
        CarvanaDataset(root / "train", root / "train_masks", scale=0.5, image_size=32)
    (root / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        CarvanaDataset(root / "empty", root / "train_masks")
