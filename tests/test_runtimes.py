"""Runtimes on a miniature network: ONNX Runtime and OpenVINO give torch's fp32 features,
int8 and bf16 stay close, the exports are made once; bad settings are refused in one line;
the quality guard, the measurements file, and the store's record of each vector's arithmetic."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import ingest.runtimes as runtimes
from engine.errors import ConfigError
from engine.vectorstore.base import PointBatch, VectorStore
from engine.vocabulary.schema import calibration_field, point_id, precision_field, runtime_field
from ingest.autotune import Measurements, Verdict, fastest, guard, nearest, unit
from ingest.democatalog import DemoCatalog
from ingest.job import IngestJob
from ingest.networks import Pooled
from ingest.options import Numerics, numerics_for, refuse_mixed_precision
from ingest.runtimes import (
    CACHE_ENV,
    Features,
    Setting,
    candidates,
    check_setting,
    open_runner,
    run_batches,
    sample_tag,
    torch_runner,
)
from serve.models import IngestIn
from tests.builders import copy_catalog, fashionrec

pytestmark = pytest.mark.runtimes  # OpenVINO and ONNX Runtime: a pytest process of their own

CPU = torch.device("cpu")
MINI = "mini"  # the vector name of the store tests


def _network() -> nn.Module:
    """A seeded miniature embedding: four convolutions (BatchNorm after the first), GeM-pooled."""
    with torch.random.fork_rng(devices=[]):  # the session's random state stays as it was
        torch.manual_seed(0)
        trunk = nn.Sequential(  # int8 keeps the first and last convolutions float
            nn.Conv2d(3, 16, 3, stride=2, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 1),
            nn.ReLU(),
        )
    return Pooled(trunk, "gem").eval()


def _photos(n: int, seed: int) -> Features:
    """n normalised 3×32×32 inputs of 4 kinds (stripes of 1-4 periods, random phase), noisy."""
    rng = np.random.default_rng(seed)
    x = np.mgrid[0:32, 0:32][1] / 32
    photos = []
    for i in range(n):
        stripes = 2 * np.pi * (1 + i % 4) * x + rng.uniform(0, 2 * np.pi)
        colours = np.stack([np.sin(stripes + c) for c in range(3)])
        photos.append(colours + 0.3 * rng.standard_normal((3, 32, 32)))
    return np.asarray(photos, dtype=np.float32)


def _cosines(a: Features, b: Features) -> Features:
    cos: Features = (unit(a) * unit(b)).sum(axis=1)
    return cos


@pytest.fixture(scope="module")
def network() -> nn.Module:
    """The miniature network, shared by the module's runtime tests."""
    return _network()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The network's cache folder (export, int8 models) for this module."""
    return tmp_path_factory.mktemp("mini-runtimes")


@pytest.fixture(scope="module")
def fp32(network: nn.Module) -> Features:
    """Torch's fp32 features of 32 photos: what every other setting is held to."""
    return torch_runner(network, CPU, bf16=False)(_photos(32, 0))


def _importorskip(runtime: str) -> None:
    pytest.importorskip(runtime)
    if runtime == "openvino":
        pytest.importorskip("nncf")


# --- the features of each setting ------------------------------------------------------------


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_compiled_fp32_gives_torchs_features(
    runtime: str, network: nn.Module, folder: Path, fp32: Features
) -> None:
    """fp32 in ONNX Runtime or OpenVINO is torch's fp32, at any batch and image size."""
    pytest.importorskip(runtime)
    runner = open_runner(Setting(runtime, "fp32"), network, CPU, folder)  # type: ignore[arg-type]
    got = run_batches(runner, _photos(32, 0), batch=5)  # exported at 2×3×224×224
    assert got.shape == fp32.shape == (32, 32)
    assert np.abs(got - fp32).max() <= 1e-5  # measured 3e-8
    assert _cosines(got, fp32).min() >= 0.99999


# int8's features are all positive (ReLU, GeM), so their raw cosine with fp32 is near 1
# whatever the error: the centred cosine (the batch's fp32 mean removed) is the telling one.
# Measured on this network: raw mean 0.9999996 (onnxruntime) and 0.9999994 (openvino),
# centred mean 0.9992 and 0.9982; bf16: min 0.999999, centred mean 0.9980. The bounds
# leave 5-10× margin.
@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_int8_stays_close_to_fp32(
    runtime: str, network: nn.Module, folder: Path, fp32: Features
) -> None:
    """int8 calibrated on photos of the same kind keeps fp32's features and neighbours."""
    _importorskip(runtime)
    sample = _photos(32, 1)
    setting = Setting(runtime, "int8")  # type: ignore[arg-type]
    got = open_runner(setting, network, CPU, folder, (sample, sample_tag(sample)))(_photos(32, 0))
    mean = fp32.mean(axis=0)
    assert _cosines(got, fp32).mean() >= 0.999
    assert _cosines(got - mean, fp32 - mean).mean() >= 0.99
    assert np.abs(got - fp32).max() > 5e-5  # quantized indeed (measured 2.5e-4 to 4.3e-4)
    suffix, op = (
        ("onnx", b"QuantizeLinear") if runtime == "onnxruntime" else ("xml", b"FakeQuantize")
    )
    assert op in (folder / f"{runtime}-int8-{sample_tag(sample)}.{suffix}").read_bytes()
    assert guard(fp32, got, [str(i % 4) for i in range(32)]).passes


def test_torch_bf16_is_close_to_fp32(network: nn.Module, fp32: Features) -> None:
    """bf16 autocast moves the features a little (GeM stays float32)."""
    got = torch_runner(network, CPU, bf16=True)(_photos(32, 0))
    mean = fp32.mean(axis=0)
    assert got.dtype == np.float32 and np.abs(got - fp32).max() > 0
    assert _cosines(got, fp32).min() >= 0.999
    assert _cosines(got - mean, fp32 - mean).mean() >= 0.99


# --- the cached files ------------------------------------------------------------------------


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_exports_and_int8_models_are_made_once(
    runtime: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The export and each calibration's int8 model are written once; another sample, another."""
    _importorskip(runtime)
    network, folder = _network(), tmp_path / "net"
    fp32, int8 = Setting(runtime, "fp32"), Setting(runtime, "int8")  # type: ignore[arg-type]
    first, second = _photos(16, 1), _photos(16, 2)
    a, b = sample_tag(first), sample_tag(second)
    assert a == sample_tag(first.copy()) and a != b
    open_runner(fp32, network, CPU, folder)
    quantized = open_runner(int8, network, CPU, folder, (first, a))(first)
    open_runner(int8, network, CPU, folder, (second, b))
    files = sorted(p.name for p in folder.iterdir())
    assert {f.rsplit(".", 1)[0] for f in files} == {
        "model",
        f"{runtime}-int8-{a}",
        f"{runtime}-int8-{b}",
    }  # no partial files left
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}

    def tripwire(*args: object, **kwargs: object) -> None:
        raise AssertionError("made again")

    monkeypatch.setattr(torch.onnx, "export", tripwire)
    monkeypatch.setattr(runtimes, f"_quantize_{runtime}", tripwire)
    open_runner(fp32, network, CPU, folder)
    again = open_runner(int8, network, CPU, folder, (first, a))(first)
    np.testing.assert_array_equal(again, quantized)
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps
    cache = Path(os.environ[CACHE_ENV])  # the tests' own (conftest), never the user's
    assert runtimes.folder_for("x", "gem", "d") == cache / "x-gem-d"


# --- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("runtime", "precision", "device", "named"),
    [
        ("onnxruntime", "bf16", "cpu", "--precision bf16 runs with --runtime torch only"),
        ("torch", "int8", "cpu", "--precision int8 runs with --runtime onnxruntime or openvino"),
        ("onnxruntime", "fp32", "cuda", "--runtime onnxruntime runs on the CPU"),
        ("tensorrt", "fp32", "cpu", "--runtime must be one of auto, torch, onnxruntime, openvino"),
        ("torch", "fp16", "cpu", "--precision must be one of auto, fp32, bf16, int8"),
    ],
)
def test_check_setting_refuses_bad_pairs_naming_the_flag(
    runtime: str, precision: str, device: str, named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pair that cannot run here is one line naming the flag to change."""
    monkeypatch.setattr(runtimes, "installed", lambda name: True)
    with pytest.raises(ConfigError) as info:
        check_setting(runtime, precision, device)
    assert str(info.value).startswith(named) and "\n" not in str(info.value)


def test_good_pairs_and_the_candidates(monkeypatch: pytest.MonkeyPatch) -> None:
    """Valid pairs pass; candidates: compiled runtimes on the CPU only, bf16 where native."""
    monkeypatch.setattr(runtimes, "installed", lambda name: True)
    for pair in [("auto", "auto"), ("torch", "bf16"), ("openvino", "int8"), ("auto", "int8")]:
        check_setting(*pair)
    check_setting("torch", "bf16", "cuda")
    assert [str(s) for s in candidates("cuda", native_bf16=False)] == ["torch fp32", "torch bf16"]
    assert ", ".join(map(str, candidates("cpu", native_bf16=False))) == (
        "torch fp32, onnxruntime fp32, onnxruntime int8, openvino fp32, openvino int8"
    )
    assert Setting("torch", "bf16") in candidates("cpu", native_bf16=True)


# --- the quality guard and the measurements --------------------------------------------------


def _clustered(seed: int = 0) -> tuple[Features, list[str]]:
    """40 features in 4 tight clusters, one per category."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((4, 16))
    labels = [i % 4 for i in range(40)]
    features = centres[labels] + 0.1 * rng.standard_normal((40, 16))
    return features.astype(np.float32), [f"c{label}" for label in labels]


def test_guard_keeps_identical_features_and_refuses_noise() -> None:
    """The same features (at any scale) keep every neighbour; drowned in noise, none."""
    features, labels = _clustered()
    same = guard(features, 3 * features, labels)
    assert (same.n, same.overlap, same.at1, same.at1_fp32) == (40, 1.0, 1.0, 1.0)
    assert same.passes and "neighbours kept" in str(same)
    noisy = features + 5 * np.random.default_rng(1).standard_normal(features.shape)
    lost = guard(features, noisy.astype(np.float32), labels)
    assert lost.overlap < 0.5 and lost.at1 < 0.8 and not lost.passes and "NOT kept" in str(lost)
    found = nearest(unit(features), 10)
    assert found.shape == (40, 10) and (found != np.arange(40)[:, None]).all()  # never itself


@pytest.mark.parametrize(
    ("at1", "overlap", "passes"),
    [(0.789, 0.95, False), (0.791, 0.95, True), (0.8, 0.89, False), (0.8, 0.9, True)],
)
def test_guard_thresholds(at1: float, overlap: float, passes: bool) -> None:
    """@1 may drop by up to 0.01 of fp32's 0.8, and the top-10 overlap must reach 0.9."""
    assert Verdict(256, 0.8, at1, overlap).passes is passes


def test_measurements_round_trip_and_a_corrupt_file_reads_as_empty(tmp_path: Path) -> None:
    """Speeds per machine and guards per calibration survive a reopen; garbage reads as none."""
    torch32, ov8, ort32 = map(Setting.parse, ("torch fp32", "openvino int8", "onnxruntime fp32"))
    kept = Verdict(256, 0.9, 0.895, 0.97)
    measured = Measurements(tmp_path / "net")
    assert measured.speeds("A") == {} and measured.guard(ov8, "t1") is None
    measured.save_speeds("A", {torch32: 100.123, ov8: 250.0})
    measured.save_speeds("B", {ort32: 80.0})
    measured.save_guard(ov8, "t1", kept)
    reopened = Measurements(tmp_path / "net")
    assert reopened.speeds("A") == {torch32: 100.12, ov8: 250.0}
    assert reopened.speeds("B") == {ort32: 80.0} and reopened.speeds("C") == {}
    assert reopened.guard(ov8, "t1") == kept
    assert reopened.guard(ov8, "t2") is None and reopened.guard(ort32, "t1") is None
    assert fastest({torch32: 100.0, ov8: 250.0, ort32: 250.0}) == [ort32, ov8, torch32]
    text = reopened.path.read_text()
    reopened.path.write_text(text[: len(text) // 2])  # cut short, as by a crash
    assert reopened.speeds("A") == {} and reopened.guard(ov8, "t1") is None
    reopened.save_speeds("A", {torch32: 90.0})  # and is written over
    assert Measurements(tmp_path / "net").speeds("A") == {torch32: 90.0}


# --- the store's record, the job, the command line -------------------------------------------


def _write(store: VectorStore, names: list[str], precision: str) -> None:
    """Points of MINI computed by openvino in `precision` on calibration abc."""
    made = {precision_field(MINI): precision, runtime_field(MINI): "openvino"}
    payloads = [{"item_id": n, **made, calibration_field(MINI): "abc"} for n in names]
    vectors = unit(np.random.default_rng(len(names)).random((len(names), 4), dtype=np.float32))
    store.write(PointBatch([point_id(n) for n in names], payloads, MINI, vectors))


def test_numerics_follow_the_stores_int8_vectors(store: VectorStore) -> None:
    """auto takes the store's int8 runtime and calibration; another precision is refused."""
    assert numerics_for(store, MINI, "auto", "auto") == Numerics("auto", "auto", None)
    store.ensure_vector(MINI, 4)
    _write(store, ["a", "b", "c"], "int8")
    assert numerics_for(store, MINI, "auto", "auto") == Numerics("openvino", "int8", "abc")
    asked = numerics_for(store, MINI, "onnxruntime", "auto")  # an asked runtime stays
    assert asked == Numerics("onnxruntime", "int8", "abc")
    assert numerics_for(store, "other", "auto", "auto") == Numerics()
    refuse_mixed_precision(store, MINI, "int8")
    with pytest.raises(ConfigError) as info:
        numerics_for(store, MINI, "auto", "fp32")
    message = str(info.value)
    assert "3 int8 mini vectors" in message and "--precision int8" in message
    assert "\n" not in message and store.count() == 3
    _write(store, ["d"], "bf16")  # the most common precision wins
    assert numerics_for(store, MINI, "auto", "auto") == Numerics("openvino", "int8", "abc")
    with pytest.raises(ConfigError, match="1 bf16 mini vectors"):
        refuse_mixed_precision(store, MINI, "int8")


def test_ingest_job_carries_runtime_and_precision(tmp_path: Path) -> None:
    """The job's JSON keeps runtime and precision (auto when absent); unknown names refused."""
    job = IngestJob(tmp_path, runtime="openvino", precision="int8").validate()
    data = job.to_json()
    assert (data["runtime"], data["precision"]) == ("openvino", "int8")
    assert IngestJob.from_json(data) == job
    del data["runtime"], data["precision"]
    older = IngestJob.from_json(data)  # a job written before there was a choice
    assert (older.runtime, older.precision) == ("auto", "auto")
    with pytest.raises(ConfigError, match=r"--runtime must be one of .*, got 'tensorrt'"):
        IngestJob(tmp_path, runtime="tensorrt").validate()
    with pytest.raises(ConfigError, match=r"--precision must be one of .*, got 'fp16'"):
        IngestJob(tmp_path, precision="fp16").validate()


def test_the_service_takes_the_jobs_json(tmp_path: Path) -> None:
    """`fashionrec ingest --api` posts job.to_json(): the service's body must accept it."""
    job = IngestJob(tmp_path, runtime="openvino", precision="int8").validate()
    assert IngestJob.from_json(IngestIn.model_validate(job.to_json()).model_dump()) == job


def test_the_command_line_refuses_int8_with_torch(
    small_catalog: DemoCatalog, tmp_path: Path
) -> None:
    """`--runtime torch --precision int8`: one line naming the flags, nothing written."""
    part = copy_catalog(small_catalog, tmp_path / "catalog", limit=2)
    home = tmp_path / "home"
    args: list[str | Path] = ["ingest", part.images, "--backbone", "mobilenet_v2"]
    result = fashionrec(*args, "--runtime", "torch", "--precision", "int8", home=home)
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --precision int8 runs with"), lines
    assert "--runtime torch use fp32 or bf16" in lines[0]
    assert not home.exists()  # no store, no event log, no report


@pytest.mark.slow
def test_an_int8_ingest_records_its_arithmetic_and_the_store_keeps_it(
    small_catalog: DemoCatalog, tmp_path: Path
) -> None:
    """int8 through the command line: calibrated on the catalog, recorded per vector, shown
    by `info`; fp32 into that store is refused with nothing written; auto reuses its model."""
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    first = copy_catalog(small_catalog, tmp_path / "first", limit=16)
    home = tmp_path / "home"
    common = ["--backbone", "mobilenet_v2", "--weights", "random"]
    done = fashionrec(
        "ingest", first.images, *common, "--runtime", "openvino", "--precision", "int8", home=home
    )
    assert done.returncode == 0, done.stderr
    assert "runtime: mobilenet_v2 openvino int8" in done.stdout
    assert "openvino int8: calibrating" in done.stdout and "neighbours" in done.stdout
    assert "mobilenet_v2 16 (openvino int8)" in " ".join(done.stdout.split())
    from engine.vectorstore.edge import EdgeStore

    store = EdgeStore(home / "store")
    try:
        records = store.retrieve([point_id(p.stem) for p in first.images.iterdir()])
        tags = {r.payload[calibration_field("mobilenet_v2")] for r in records}
        assert {r.payload[precision_field("mobilenet_v2")] for r in records} == {"int8"}
        assert {r.payload[runtime_field("mobilenet_v2")] for r in records} == {"openvino"}
        assert len(tags) == 1 and len(next(iter(tags))) == 12
    finally:
        store.close()
    rest = copy_catalog(small_catalog, tmp_path / "rest")
    refused = fashionrec("ingest", rest.images, *common, "--precision", "fp32", home=home)
    assert refused.returncode == 1 and "must not mix precisions" in refused.stderr
    errors = [line for line in refused.stderr.splitlines() if not line.startswith("WARNING")]
    assert len(errors) == 1 and errors[0].startswith("error:"), errors
    shown = fashionrec("info", home=home)
    assert "openvino · int8" in shown.stdout and "16" in shown.stdout
    again = fashionrec("ingest", rest.images, *common, home=home)
    assert again.returncode == 0, again.stderr
    assert f"reusing the store's calibration {next(iter(tags))}" in again.stdout
    assert "mobilenet_v2 7 (openvino int8)" in " ".join(again.stdout.split())
