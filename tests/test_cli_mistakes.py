"""Mistakes a new user makes on the command line, Ctrl-C, and output a person can read.

Every mistake ends in one line on stderr that says what is wrong and what to do, a
non-zero exit, no traceback and nothing half-written; a property test drives the commands
with generated bad arguments and files. Tables fit the terminal they are printed on."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import engine.shoppers.purchaselog as purchaselog_module
import engine.shoppers.simulations as simulations_module
import ingest.runs as runs_module
from cli.main import app
from cli.recommend import COLUMNS, decimals
from engine.application import Application
from engine.recommend.rerank import Recommendation
from ingest.democatalog import DemoCatalog
from tests.builders import CliResult, copy_catalog, fashionrec, home_with_items

ITEM = "WOMEN-Dresses-id_00000001-01_1_front"  # one of home_with_items' items


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with items (30, 4-d "resnet50" vectors), three stores and four shoppers;
    built once: the tests here only read it, or fail before they write."""
    home = tmp_path_factory.mktemp("mistakes") / "home"
    home_with_items(home)
    assert fashionrec("shops", "generate", "--count", "3", home=home).returncode == 0
    assert fashionrec("simulate", "--users", "4", home=home).returncode == 0
    return home


def one_line(result: CliResult) -> str:
    """The single stderr line of a command that failed cleanly."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# --- one line for each mistake -------------------------------------------------------------


def test_export_to_a_folder_that_does_not_exist(home: Path, tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "x.csv"
    line = one_line(fashionrec("purchases", "export", target, home=home))
    assert line == (
        f"error: {target}: the folder {target.parent} does not exist; create it or choose "
        "another path"
    )
    assert not (tmp_path / "no").exists()
    fresh = tmp_path / "fresh"
    one_line(fashionrec("purchases", "export", target, home=fresh))
    assert not fresh.exists()  # checked before the home is opened
    folder = one_line(fashionrec("purchases", "export", tmp_path, home=home))
    assert "is a folder; give the name of a CSV file" in folder


def test_show_refuses_a_picture_it_cannot_write(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "grid.txt"
    line = one_line(fashionrec("show", "--user", "sim-00001", "--out", out, home=home))
    assert line.startswith(f"error: --out {out}: a picture needs one of the suffixes ")
    assert "png" in line and "e.g. grid.png" in line
    assert list(tmp_path.iterdir()) == []
    missing = one_line(fashionrec("show", "--out", out, home=home))
    assert missing == "error: Missing option '--user'; see `fashionrec show --help`"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--json", "--csv"), "error: --json and --csv both given; choose one"),
        (
            ("--at", "200,2"),
            "error: --at '200,2': need -90 <= LAT <= 90 and -180 <= LON <= 180",
        ),
        (
            ("--w-visual", "0", "--w-popularity", "0", "--w-category", "0"),
            "error: every weight is 0 (visual, popularity, category and distance), so every "
            "item would score 0; give at least one a positive value, e.g. --w-visual 0.6",
        ),
        (
            ("--backbone", "resnet"),
            "error: unknown backbone 'resnet' (did you mean resnet50?); choose one of "
            "resnet50, densenet121, vgg16, mobilenet_v2; the store has resnet50",
        ),
        (
            ("--preset", "rando"),
            "error: --preset must be one of default, paper, got 'rando'",
        ),
    ],
)
def test_recommend_mistakes(home: Path, args: tuple[str, ...], message: str) -> None:
    assert one_line(fashionrec("recommend", "--item", ITEM, *args, home=home)) == message


def test_item_flags_with_a_user_are_refused(home: Path) -> None:
    line = one_line(
        fashionrec("recommend", "--user", "sim-00001", "--trendiness", "0.9", home=home)
    )
    assert line == (
        "error: --trendiness is for item and photo queries; a user's recommendations use "
        "their own trendiness, gender and residence: drop --trendiness"
    )
    both = fashionrec(
        "recommend", "--user", "sim-00001", "--at", "48,2", "--gender", "MEN", home=home
    )
    assert "--gender, --at are for item and photo queries" in one_line(both)


def test_a_taxonomy_with_a_misspelt_key(home: Path, tmp_path: Path) -> None:
    toml = tmp_path / "shop.toml"
    toml.write_text('extends = "deepfashion"\nsame_categroy = 1.0\n', encoding="utf-8")
    line = one_line(fashionrec("recommend", "--item", ITEM, "--taxonomy", toml, home=home))
    assert line.startswith(f"error: {toml}: unknown key(s) same_categroy; known: name, ")
    assert line.endswith("; did you mean same_category?")


def test_a_purchase_log_names_its_first_twenty_problems(home: Path, tmp_path: Path) -> None:
    rows = [f"u{n},no-item-{n},2025-01-01T00:00:00Z" for n in range(22)]
    rows += ["u,x,yesterday", "u,x,2025-01-01T00:00:00Z,S99,,7"]
    log = tmp_path / "p.csv"
    log.write_text(
        "user_id,item_id,timestamp,store_id,gender,trendiness\n" + "\n".join(rows) + "\n",
        encoding="utf-8",
    )
    line = one_line(fashionrec("purchases", "import", log, home=home))
    named = re.findall(rf"{re.escape(str(log))}:(\d+): ", line)
    assert named == [str(n) for n in range(2, 22)]  # rows 2..21: twenty, in row order
    assert line.endswith("; and 4 more problem(s); nothing recorded")
    assert f"{log}:2: unknown item 'no-item-0'; {log}:3: unknown item 'no-item-1'" in line


def test_row_problems_and_unknown_items_are_reported_together(home: Path, tmp_path: Path) -> None:
    log = tmp_path / "p.csv"
    log.write_text(
        "user_id,item_id,timestamp\nu,nothing,2025-01-01T00:00:00Z\nv,x,yesterday\n",
        encoding="utf-8",
    )
    line = one_line(fashionrec("purchases", "import", log, home=home))
    assert line == (
        f"error: {log}:2: unknown item 'nothing'; {log}:3: bad timestamp 'yesterday' "
        + line.split("bad timestamp 'yesterday' ", 1)[1]
    )
    assert line.endswith("; nothing recorded")


def test_unknown_weights_name_the_valid_ones(tmp_path: Path, small_catalog: DemoCatalog) -> None:
    part = copy_catalog(small_catalog, tmp_path / "catalog", limit=2)
    home = tmp_path / "home"
    args = ("ingest", part.images, "--weights", "rando", "--backbone", "mobilenet_v2")
    line = one_line(fashionrec(*args, "--workers", "0", home=home))
    assert line == (
        "error: --weights 'rando': not imagenet or random, and no such file; use --weights "
        "imagenet, --weights random (demos only) or --weights PATH (a checkpoint or "
        "state-dict file)"
    )
    assert not (home / "store").exists()  # nothing written


def test_arguments_click_refuses_are_one_line(home: Path) -> None:
    assert one_line(fashionrec("recommend", "-k", "abc", home=home)).startswith(
        "error: Invalid value for '-k' / '--k': "
    )
    assert one_line(fashionrec("nope", home=home)) == (
        "error: No such command 'nope'; see `fashionrec --help`"
    )
    assert one_line(fashionrec("--bogus", home=home)) == (
        "error: No such option: --bogus; see `fashionrec --help`"
    )


def test_values_in_brackets_print_as_they_are(home: Path) -> None:
    # rich markup in an error would vanish ("[groups]") or raise ("[/x]")
    assert one_line(fashionrec("recommend", "--item", "[/x]", home=home)) == (
        "error: unknown item '[/x]'"
    )


# --- Ctrl-C ----------------------------------------------------------------------------


def _interrupt(*_: Any, **__: Any) -> Any:
    raise KeyboardInterrupt


def test_ctrl_c_during_ingest(
    tmp_path: Path, small_catalog: DemoCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    part = copy_catalog(small_catalog, tmp_path / "catalog", limit=2)
    monkeypatch.setattr(runs_module, "run", _interrupt)
    result = fashionrec(
        "ingest", part.images, "--weights", "random", "--backbone", "mobilenet_v2",
        "--workers", "0", "--runtime", "torch", home=tmp_path / "home",
    )  # fmt: skip
    assert result.returncode == 130 and "Traceback" not in result.stderr
    # the line before is --weights random's warning
    assert result.stderr.strip().splitlines()[-1] == (
        "interrupted; run the same command again to resume"
    )


def test_ctrl_c_during_simulate(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def stop_at(stage: str) -> Callable[..., Any]:
        def run(*_: Any, on_stage: Callable[[str], None], **__: Any) -> Any:
            on_stage(stage)
            raise KeyboardInterrupt

        return run

    monkeypatch.setattr(simulations_module, "run_simulation", stop_at("simulating purchases"))
    early = fashionrec("simulate", "--users", "2", home=home)
    assert early.returncode == 130
    assert early.stderr.strip() == (
        "interrupted; no user or purchase was logged; run the same command again"
    )
    monkeypatch.setattr(simulations_module, "run_simulation", stop_at("syncing popularity"))
    late = fashionrec("simulate", "--users", "2", home=home)
    assert late.returncode == 130
    assert "run `fashionrec popularity sync`" in one_line(late)


def test_ctrl_c_during_a_purchase_import(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Application, "import_purchases", _interrupt)
    log = tmp_path / "p.csv"
    log.write_text(f"user_id,item_id,timestamp\nu,{ITEM},2025-01-01T00:00:00Z\n")
    result = fashionrec("purchases", "import", log, home=home)
    assert result.returncode == 130
    assert one_line(result) == "interrupted; nothing imported; run the same command again"


def test_ctrl_c_elsewhere_is_one_line(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(purchaselog_module, "export_purchases", _interrupt)
    result = fashionrec("purchases", "export", "x.csv", home=home)
    assert result.returncode == 130 and one_line(result) == "interrupted"


# --- output a person (or a program) can read ------------------------------------------------


def _strict(text: str) -> Any:
    """JSON as the standard has it: NaN and Infinity are not numbers a parser must take."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("who", [("--item", ITEM), ("--user", "sim-00001")])
def test_json_has_null_where_a_term_is_unknown(home: Path, who: tuple[str, str]) -> None:
    """Ranked inside Qdrant with w_v = 0, the visual term cannot be recovered from the
    relevance: `--json` says null (it once printed NaN, which no JSON parser must accept),
    `--csv` leaves the cell empty, the table shows a dash, and the service says the same."""
    args = [*who, "--rerank", "server", "--w-visual", "0", "-k", "3"]
    shown = fashionrec("recommend", *args, "--json", home=home)
    assert shown.returncode == 0, shown.stderr
    document = _strict(shown.stdout)
    recs = [r for ranked in document["lists"] for r in ranked["recommendations"]]
    assert recs and all(r["visual"] is None for r in recs)
    assert all(isinstance(r["relevance"], float) for r in recs)
    rows = list(
        csv.DictReader(io.StringIO(fashionrec("recommend", *args, "--csv", home=home).stdout))
    )
    assert rows and all(row["visual"] == "" for row in rows)
    assert "nan" not in fashionrec("recommend", *args, home=home).stdout.lower()


def _recommend(home: Path, width: int, *args: str) -> str:
    env = {"FASHIONREC_HOME": str(home), "FASHIONREC_QDRANT_URL": None, "COLUMNS": str(width)}
    result = CliRunner().invoke(app, ["recommend", *args], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("width", [50, 60, 80, 100, 200])
def test_tables_fit_the_terminal(home: Path, width: int) -> None:
    out = _recommend(home, width, "--user", "sim-00001", "-k", "3")
    assert max(len(line) for line in out.splitlines()) <= width
    for line in out.splitlines():
        if line.startswith(("┏", "┃", "│", "└")):
            assert line.rstrip()[-1] in "┓┃│┘", line  # the right edge is drawn
    assert "relev. = 0.6·visual + 0.2·match + 0.2·cat." in " ".join(out.split())
    assert "(weights: preset default, w_v 0.6, w_p 0.2, w_c 0.2, γ 2)" in " ".join(out.split())
    if width < 140:
        assert "not shown for want of width:" in out


def test_every_column_is_shown_when_there_is_room(home: Path) -> None:
    out = _recommend(home, 200, "--item", ITEM, "-k", "3", "--preset", "paper")
    header = next(line for line in out.splitlines() if line.startswith("┃"))
    for name in ("item", "product", "category", "gender", "shop", "km", "visual", "pop.",
                 "match", "cat.", "relev."):  # fmt: skip
        assert f" {name} " in header
    assert "not shown" not in out
    assert "relev. = 0.7·visual + 0.3·match + 0·cat. (weights: preset paper" in out


def test_relevance_ties_are_not_invented() -> None:
    assert decimals([1.0, 0.99996, 0.99991], 3) == 5
    assert decimals([0.5, 0.5, 0.25], 3) == 3  # a real tie stays a tie
    assert decimals([0.1234, 0.5678], 3) == 3


def test_csv_carries_every_term_the_json_does(home: Path) -> None:
    result = fashionrec("recommend", "--item", ITEM, "-k", "2", "--csv", home=home)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    fields = {f for f in Recommendation.__dataclass_fields__}
    assert set(rows[0]) == {"list", *fields} and "popularity_term" in rows[0]
    assert COLUMNS[:3] == ("rank", "item_id", "product_id")


# --- property: generated mistakes ----------------------------------------------------------

NUMBER_FLAGS = ("-k", "--candidates", "--w-visual", "--w-popularity", "--w-category", "--gamma",
                "--max-km", "--diversity", "--trendiness")  # fmt: skip
junk = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=12
).filter(lambda t: not t.startswith("-"))
bad_number = st.one_of(
    st.sampled_from(["-1", "2", "nan", "inf", "-inf", "1e309", "0x10", "", "abc"]), junk
)


def _bad_recommend() -> st.SearchStrategy[list[str]]:
    flag = st.sampled_from(NUMBER_FLAGS)
    return st.tuples(flag, bad_number).map(lambda p: ["recommend", "--item", ITEM, *p])


def _bad_choice() -> st.SearchStrategy[list[str]]:
    commands = st.sampled_from(
        [
            ["recommend", "--item", ITEM, "--backbone"],
            ["recommend", "--item", ITEM, "--preset"],
            ["recommend", "--item", ITEM, "--rerank"],
            ["recommend", "--item", ITEM, "--popularity"],
            ["recommend", "--item", ITEM, "--gender"],
            ["recommend", "--item", ITEM, "--at"],
            ["recommend", "--item"],
            ["recommend", "--user"],
            ["users", "show"],
            ["show", "--user"],
            ["popularity", "mode"],
            ["popularity", "top", "--as-of"],
            ["popularity", "top", "--mode"],
            ["evaluate", "--backbones"],
            ["shops", "generate", "--region"],
            ["purchases", "import", "--timezone"],
            ["simulate", "--start"],
        ]
    )
    return st.tuples(commands, junk.filter(lambda t: t.strip() not in _VALID)).map(
        lambda p: [*p[0], p[1]]
    )


_VALID = {"resnet50", "default", "paper", "client", "server", "all-time", "trending", "MEN",
          "WOMEN", "sim-00001", "sim-00002", "sim-00003", "sim-00004"}  # fmt: skip

file_body = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200),
    st.lists(st.text(alphabet="abc,;\"'\n0123456789-:TZ_", max_size=30), max_size=6).map(
        lambda rows: "user_id,item_id,timestamp\n" + "\n".join(rows)
    ),
    st.just('same_categroy = 1.0\n[groups]\nx = "y"\n'),
)
FILE_COMMANDS = (
    ("purchases", "import"),
    ("shops", "import"),
    ("recommend", "--item", ITEM, "--taxonomy"),
    ("ingest", "--weights", "random", "--workers", "0"),
    ("weights", "import"),
    ("snapshot", "restore"),
)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(args=st.one_of(_bad_recommend(), _bad_choice()))
def test_generated_bad_arguments_end_in_one_line(home: Path, args: list[str]) -> None:
    result = fashionrec(*args, home=home)
    if result.returncode == 0:  # a junk value that happens to be valid (e.g. -k 2)
        return
    one_line(result)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=file_body, command=st.sampled_from(FILE_COMMANDS), suffix=st.sampled_from(
    [".csv", ".toml", ".tar.gz", ".pth", ".tgz", ""]
))  # fmt: skip
def test_generated_bad_files_end_in_one_line(
    home: Path, tmp_path_factory: pytest.TempPathFactory, body: str | bytes,
    command: tuple[str, ...], suffix: str,
) -> None:  # fmt: skip
    folder = tmp_path_factory.mktemp("bad")
    path = folder / f"bad{suffix}"
    if isinstance(body, bytes):
        path.write_bytes(body)
    else:
        path.write_text(body, encoding="utf-8")
    args = [command[0], path, *command[1:]] if command[0] == "ingest" else [*command, path]
    result = fashionrec(*args, home=home)
    if result.returncode == 0:
        pytest.fail(f"{args} accepted {body!r}")
    one_line(result)


def test_output_to_a_file_is_as_wide_as_its_content(home: Path) -> None:
    """Redirected, a table keeps every column and a line is never cut at 80 columns."""
    env = {"FASHIONREC_HOME": str(home), "FASHIONREC_QDRANT_URL": None, "COLUMNS": None}
    result = CliRunner().invoke(
        app, ["recommend", "--user", "sim-00001", "-k", "3"], env=env, catch_exceptions=False
    )
    assert result.exit_code == 0, result.stderr
    assert "not shown for want of width" not in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) > 100
    legend = next(line for line in result.stdout.splitlines() if line.startswith("relev."))
    assert legend.endswith("γ 2)")  # one line, not wrapped


def test_version_and_the_backbones_in_the_help() -> None:
    version = CliRunner().invoke(app, ["--version"])
    assert version.exit_code == 0 and version.stdout.strip().startswith("fashionrec 0.")
    shown = CliRunner().invoke(app, ["ingest", "--help"], env={"COLUMNS": "200"})
    assert "resnet50, densenet121, vgg16, mobilenet_v2" in shown.stdout


def test_trending_scores_read_as_decimals() -> None:
    from cli.shoppers import _decayed

    assert (_decayed(3.5e-08), _decayed(0.0), _decayed(2.345)) == ("<0.01", "0.00", "2.35")
