"""Backbones: embedding sizes, weights files, the ImageNet cache path, the torchvision step."""

from __future__ import annotations

import urllib.error
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from engine.catalog.inputs import load_input
from engine.catalog.items import Item
from engine.catalog.sources import open_catalog
from engine.errors import WeightsError
from ingest.autotune import unit
from ingest.democatalog import DemoCatalog
from ingest.embedder import Embedder
from ingest.loading import build_model
from ingest.torchcompat import import_torchvision, needs_op_schemas


def _batch(n: int = 2, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 224, 224), dtype=torch.uint8, generator=generator)


def test_torchvision_imports_and_builds_models() -> None:
    torchvision = import_torchvision()
    assert import_torchvision() is torchvision  # a second call is harmless
    assert isinstance(torchvision.models.resnet18(), torch.nn.Module)


def test_op_schemas_only_for_the_known_failure() -> None:
    assert needs_op_schemas(RuntimeError("operator torchvision::nms does not exist"))
    assert not needs_op_schemas(RuntimeError("CUDA error: out of memory"))
    assert not needs_op_schemas(ImportError("torchvision::nms does not exist"))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "dim"), [("resnet50", 2048), ("densenet121", 1024), ("vgg16", 4096)]
)
def test_embedding_sizes_and_unit_norm(name: str, dim: int) -> None:
    embedder = Embedder(name, "random", device="cpu", precision="fp32", runtime="torch")
    vectors = embedder(_batch())
    assert vectors.shape == (2, dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


@pytest.mark.slow
def test_random_weights_are_seeded(resnet: Embedder) -> None:
    again = Embedder("resnet50", "random", device="cpu", precision="fp32", runtime="torch")
    np.testing.assert_allclose(resnet(_batch()), again(_batch()), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_bf16_keeps_each_photos_features_apart(small_catalog: DemoCatalog) -> None:
    """bf16 moves an Embedder's features, but each photo's stay nearest its fp32 features
    among 23 different garments. Raw cosines would say nothing: every feature of a random
    network points the same way (≈ 0.9999 for any two photos), so the batch's fp32 mean is
    taken out first."""
    photos = [e for e in open_catalog(small_catalog.images) if isinstance(e, Item)]
    batch = torch.from_numpy(np.stack([load_input(p)[0] for p in photos]))
    exact = Embedder("mobilenet_v2", "random", device="cpu", precision="fp32", runtime="torch")(
        batch
    )
    fast = Embedder("mobilenet_v2", "random", device="cpu", precision="bf16", runtime="torch")(
        batch
    )
    mean = exact.mean(axis=0)
    centred_exact, centred_fast = unit(exact - mean), unit(fast - mean)
    assert np.abs(fast - exact).max() > 1e-4  # bf16 indeed
    assert (centred_fast * centred_exact).sum(axis=1).min() >= 0.9
    nearest = (centred_fast @ centred_exact.T).argmax(axis=1)
    np.testing.assert_array_equal(nearest, np.arange(len(photos)))


def _write_weights(path: Path, seed: int) -> torch.nn.Module:
    """A full torchvision MobileNetV2 (with its classifier) saved as a state dict: the
    loading path is every backbone's, the small network keeps the test quick."""
    torch.manual_seed(seed)
    model = import_torchvision().models.mobilenet_v2()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return model


def test_weights_file_is_loaded(tmp_path: Path) -> None:
    path = tmp_path / "mobilenet_v2.pth"
    reference = _write_weights(path, seed=123)
    loaded = Embedder("mobilenet_v2", path, device="cpu", precision="fp32", runtime="torch")
    assert not loaded.random_init
    batch = _batch()
    with torch.inference_mode():
        reference.classifier = torch.nn.Identity()  # type: ignore[assignment]
        expected = torch.nn.functional.normalize(
            reference.eval()(
                (batch.float() / 255 - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
                / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
            ),
            dim=1,
        )
    np.testing.assert_allclose(loaded(batch), expected.numpy(), rtol=1e-4, atol=1e-5)
    random = Embedder("mobilenet_v2", "random", device="cpu", precision="fp32", runtime="torch")
    assert not np.allclose(loaded(batch), random(batch))  # not the random-init model


def test_imagenet_weights_come_from_the_torch_home_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = tmp_path / "hub" / "checkpoints" / "mobilenet_v2-b0353104.pth"
    _write_weights(cached, seed=7)
    from_cache = Embedder("mobilenet_v2", "imagenet", "cpu", "fp32", runtime="torch")
    from_file = Embedder("mobilenet_v2", cached, "cpu", "fp32", runtime="torch")
    np.testing.assert_allclose(from_cache(_batch()), from_file(_batch()), rtol=1e-5, atol=1e-6)


def test_imagenet_weights_unavailable_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsError) as info:
        build_model("densenet121", "imagenet")
    message = str(info.value)
    assert "densenet121-a639ec97.pth" in message and "--weights PATH" in message
    assert "--weights random" in message and "\n" not in message


def test_bad_weights_files(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not imagenet or random, and no such file"):
        build_model("resnet50", tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_text("not a checkpoint")
    with pytest.raises(WeightsError, match="not a PyTorch state-dict file"):
        build_model("resnet50", junk)
    other = tmp_path / "densenet.pth"
    torch.save(import_torchvision().models.densenet121().state_dict(), other)
    with pytest.raises(WeightsError, match="not a resnet50 state dict"):
        build_model("resnet50", other)


def test_unknown_backbone() -> None:
    with pytest.raises(WeightsError, match="unknown backbone 'alexnet'"):
        build_model("alexnet", "random")


def test_a_job_too_small_to_judge_keeps_to_fp32() -> None:
    """Fewer than GUARD_MIN photos judge nothing: auto leaves bf16 out (and says so)
    rather than take it on a verdict of 0–3 photos."""
    from ingest.runtimes import Setting

    notes: list[str] = []
    embedder = Embedder(
        "mobilenet_v2", "random", device="cpu", precision="fp32", runtime="torch",
        on_note=notes.append,
    )  # fmt: skip
    bf16, fp32 = Setting("torch", "bf16"), Setting("torch", "fp32")
    embedder.options, embedder.speeds = [bf16, fp32], {bf16: 20.0, fp32: 10.0}  # as measured

    def sample(n: int) -> tuple[torch.Tensor, list[str]]:
        raise AssertionError("a job this small is never sampled")

    embedder.prepare(3, sample)
    assert embedder.setting == fp32 and embedder.guard is None
    assert notes == [  # the choice, said once
        "runtime: mobilenet_v2 torch fp32 (auto: torch bf16 left out: 3 photo(s) are too few "
        "to judge its neighbours (64 needed); so the next fastest of torch bf16 20, torch fp32 "
        "10 img/s measured here)"
    ]


def test_a_small_job_pays_for_no_timing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A job under MEASURE_MIN photos runs torch fp32 rather than time the runtimes (a
    minute per network, once); speeds measured before are used at no cost."""
    from ingest.autotune import MEASURE_MIN
    from ingest.runtimes import Setting

    notes: list[str] = []
    embedder = Embedder("mobilenet_v2", "random", device="cpu", on_note=notes.append)
    fp32, fast = Setting("torch", "fp32"), Setting("onnxruntime", "fp32")
    embedder.options, embedder.speeds = [fp32, fast], {}  # what a machine never timed offers

    def never(*args: object) -> None:
        raise AssertionError("nothing is timed or sampled for a small job")

    monkeypatch.setattr(embedder, "_measured", never)
    embedder.prepare(MEASURE_MIN - 1, never)  # type: ignore[arg-type]
    assert embedder.setting == fp32 and len(notes) == 1
    assert notes[0].startswith("runtime: mobilenet_v2 torch fp32 (auto: a job of 999 photo(s)")
    embedder.options, embedder.speeds = [fast, fp32], {fast: 40.0, fp32: 20.0}  # timed before
    embedder.prepare(10, never)  # type: ignore[arg-type]
    assert embedder.setting == fast
    assert notes[1] == (
        "runtime: mobilenet_v2 onnxruntime fp32 (auto: the fastest of onnxruntime fp32 40, "
        "torch fp32 20 img/s measured here)"
    )


def test_int8_made_for_this_catalog_before_is_taken_again() -> None:
    """Two homes of one catalog on one machine: int8 whose calibration would not pay back
    is still considered where its model for this job's own sample is cached (or the
    store's), so the second home gets the first one's arithmetic."""
    from ingest.autotune import machine
    from ingest.runtimes import Setting, quantized_path, sample_tag

    embedder = Embedder("mobilenet_v2", "random", device="cpu", precision="fp32", runtime="torch")
    int8 = Setting("openvino", "int8")
    embedder.speeds = {int8: 300.0, Setting("openvino", "fp32"): 40.0}
    embedder.measurements.save_int8_cost(machine(), 10_000.0)  # never pays back
    images = torch.randint(0, 256, (4, 3, 224, 224), generator=torch.Generator().manual_seed(1))
    other = torch.zeros((4, 3, 224, 224), dtype=torch.uint8)

    def sample_of(pixels: torch.Tensor) -> Any:
        return lambda n: (pixels.to(torch.uint8), ["Dresses"] * 4)

    assert not embedder._int8_ready(int8, 500, sample_of(images))  # nothing cached
    made = quantized_path("openvino", embedder.folder, sample_tag(embedder.inputs(images)))
    made.parent.mkdir(parents=True, exist_ok=True)
    made.write_text("<model/>")  # what an earlier home of this catalog calibrated
    assert embedder._int8_ready(int8, 500, sample_of(images))
    assert not embedder._int8_ready(int8, 500, sample_of(other))  # another catalog
    made.unlink()


def test_settings_are_timed_in_turns_and_the_median_counts() -> None:
    """Every setting's timings interleave (a slow spell falls on all alike) and one slow
    run does not decide."""
    from ingest.autotune import speeds
    from ingest.runtimes import Setting

    calls: list[str] = []
    slow = iter([False, False, True, False, False, False])  # the warm-up, then 5 runs
    now = [0.0]  # a clock the runners advance: no real sleeps, no wall-clock bounds

    def runner(name: str, seconds: float) -> Any:
        def run(batch: np.ndarray) -> np.ndarray:
            calls.append(name)
            now[0] += seconds + (0.2 if name == "b" and next(slow) else 0.0)  # one slow spell
            return batch

        return run

    a, b = Setting("torch", "fp32"), Setting("torch", "bf16")
    batch = np.zeros((4, 3, 2, 2), dtype=np.float32)
    runners = {a: runner("a", 0.02), b: runner("b", 0.01)}
    measured = speeds(runners, batch, runs=5, clock=lambda: now[0])
    assert calls == ["a", "b"] + ["a", "b"] * 5
    assert measured == pytest.approx({a: 4 / 0.02, b: 4 / 0.01})  # the median, not the slow run


def test_int8_is_considered_where_its_one_time_cost_pays_back() -> None:
    from ingest.autotune import int8_pays
    from ingest.runtimes import Setting

    measured = {
        Setting("openvino", "int8"): 250.0,
        Setting("openvino", "fp32"): 40.0,
        Setting("torch", "fp32"): 25.0,
    }
    # 1/40 − 1/250 = 0.021 s saved a photo: 45 s pay back from about 2,143 photos
    assert not int8_pays(800, measured, 45.0)
    assert int8_pays(3000, measured, 45.0)
    assert int8_pays(800, measured, 10.0)
    assert int8_pays(5, {Setting("openvino", "int8"): 250.0}, 45.0)  # asked for alone


def test_a_setting_measured_slower_than_the_fastest_fp32_is_never_taken() -> None:
    """The options are walked fastest first and the first fp32 ends the walk: a bf16 that
    measured slower than an fp32 is not even judged."""
    from ingest.runtimes import Setting

    embedder = Embedder("mobilenet_v2", "random", device="cpu", precision="fp32", runtime="torch")
    fp32, bf16 = Setting("torch", "fp32"), Setting("torch", "bf16")
    embedder.options, embedder.speeds = [fp32, bf16], {fp32: 20.0, bf16: 10.0}  # fp32 faster

    def sample(n: int) -> tuple[torch.Tensor, list[str]]:
        raise AssertionError("nothing is judged: fp32 came first")

    embedder.prepare(5000, sample)
    assert embedder.setting == Setting("torch", "fp32")
