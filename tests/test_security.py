"""A library received from someone else is data: its stored metric configs are never built.

The crafted-library attack (issue 10): a library's database names unregistered metrics whose
stored configs import a module of the attacker's choosing, call ``os:system``, or name weights
``../../x.pth`` or an absolute path. ``index`` and ``doctor --repair`` must refuse with a clear
message, write nothing outside the library and ``$LOOKALIKE_HOME``, and import nothing they name.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from pathlib import Path

import pytest
from tests.conftest import ROOT, run_cli
from tests.dbfixtures import copy_photos
from tests.weights_server import random_bytes, server  # noqa: F401 (server is a fixture)

from lookalike.embed.config import MetricConfig, UnsafeConfigError, WeightFile, check_config
from lookalike.embed.factory import create_metric, import_builder
from lookalike.embed.registry import (
    UnregisteredMetricError,
    get_config,
    library_config,
    list_metrics,
)
from lookalike.embed.weights import cached_path, resolve
from lookalike.errors import UsageError
from lookalike.paths import user_metrics_dir, weights_dir

MARKER_MODULE = "lookalike_attack_marker"


def write_marker_module(folder: Path, marker: Path) -> Path:
    """A module that leaves ``marker`` behind when it is imported (the attacker's payload)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{MARKER_MODULE}.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('imported')\n"
        "def build(config):\n    raise SystemExit('attacker code ran')\n")
    return folder


def files_under(root: Path, skip: list[Path]) -> set[str]:
    """Every file and link under ``root``, except under the ``skip`` folders."""
    out = set()
    for base, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if Path(base, d) not in skip]
        out.update(str(Path(base, f)) for f in files)
    return out


# -- the crafted library, through the CLI --------------------------------------------------------


@pytest.fixture(scope="module")
def clean_library(photos, tmp_path_factory) -> Path:
    """A real library of 6 photos under tiny-vit, built once; tests tamper with copies."""
    base = tmp_path_factory.mktemp("clean")
    copy_photos(photos, base / "pics", 6)
    env = {"LOOKALIKE_HOME": str(base / "home")}
    run_cli("index", str(base / "pics"), "--library", str(base / "lib"), "--metric", "tiny-vit", "-q",
            env=env, check=True)
    return base


def crafted(name: str, builder: str, weights: list[dict[str, str]], like: str = "tiny-vit") -> dict[str, object]:
    """A stored config as an attacker writes it: complete, so that it matches its own provenance."""
    from lookalike.embed.config import MetricConfig

    base = get_config(like).to_dict()
    full = MetricConfig.from_dict({**base, "name": name, "builder": builder, "weights": weights,
                                   "test_only": False})
    return full.to_dict()


ATTACKS = {
    # an unregistered metric whose builder is the attacker's module
    "import": lambda t, url: crafted("evil-import", f"{MARKER_MODULE}:build", []),
    # a builder outside lookalike: os.system(config)
    "os-system": lambda t, url: crafted("evil-system", "os:system", []),
    # lookalike's own effnet builder, made to download weights to ../../x.pth (outside the cache)
    "dotdot-weights": lambda t, url: crafted("evil-dotdot", "lookalike.embed.backbones.effnet:build",
                                             [{"name": "../../x.pth", "url": url}], "effnet-lite0"),
    "absolute-weights": lambda t, url: crafted("evil-absolute", "lookalike.embed.backbones.effnet:build",
                                               [{"name": str(t / "abs.pth"), "url": url}], "effnet-lite0"),
    # a registered name whose stored config was rewritten to name the attacker's builder
    "registered-name": lambda t, url: crafted("tiny-vit", f"{MARKER_MODULE}:build",
                                              [{"name": "../../x.pth", "url": url}]),
}


def tamper(lib: Path, config: dict[str, object]) -> None:
    """Write ``config`` into the library's database as the stored config of its metric."""
    from sqlalchemy import select

    from sqlalchemy import delete, func

    from lookalike.library.folder import LibraryFolder
    from lookalike.store.models import MetricIndex, Vector

    with LibraryFolder.open(lib, writable=True) as library, library.store.transaction() as s:
        first = s.scalar(select(func.min(Vector.content_id)))
        s.execute(delete(Vector).where(Vector.content_id == first))  # work for index and doctor
        row = s.scalar(select(MetricIndex).where(MetricIndex.name == config["name"]))
        prov = {"metric": config["name"], "config": config, "precision": "fp32", "packages": {}}
        if row is None:
            s.add(MetricIndex(name=config["name"], dim=32, distance="cosine", provenance=prov,
                              factory=None, factory_override=None, vector_count=0))
        else:
            row.provenance = prov


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_crafted_library_is_refused_by_index_and_doctor(clean_library, tmp_path, server, attack):  # noqa: F811
    server.files["payload.pth"] = random_bytes(4096)  # served if anything tried to download
    world = tmp_path / "world"  # ../../ of the cache is inside it: everything written lands here
    home, lib = world / "lh" / "home", world / "lib"
    shutil.copytree(clean_library / "lib", lib)
    home.mkdir(parents=True)
    config = ATTACKS[attack](world, server.url("payload.pth"))
    tamper(lib, config)
    for index_file in (lib / "indexes").glob("*.faiss"):  # a finding, so that doctor --repair acts
        index_file.unlink()
    marker = tmp_path / "attacker-code-ran"
    pp = write_marker_module(tmp_path / "attacker", marker)
    env = {"LOOKALIKE_HOME": str(home), "PYTHONPATH": f"{ROOT}{os.pathsep}{pp}"}
    before = files_under(world, [lib, home])
    for args in (["index", "--library", str(lib)],
                 ["index", "--library", str(lib), "--metric", str(config["name"])],
                 ["doctor", "--library", str(lib), "--repair"]):
        proc = run_cli(*args, env=env, timeout=120)
        assert proc.returncode != 0, (args, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr, proc.stderr
        assert str(config["name"]) in proc.stderr
        assert ("refusing" in proc.stderr) or ("--rebuild" in proc.stderr), proc.stderr
        assert not marker.exists(), f"{args}: the library's builder was imported"
        assert files_under(world, [lib, home]) == before, f"{args}: wrote outside the library and cache"
    assert server.requests == []  # nothing was downloaded either


def test_registered_metric_with_a_tampered_config_is_rebuilt_from_the_registry(clean_library, tmp_path):
    """``--rebuild`` re-embeds with the registered config; the stored one is only compared."""
    home, lib = tmp_path / "home", tmp_path / "lib"
    shutil.copytree(clean_library / "lib", lib)
    home.mkdir(parents=True)
    tamper(lib, crafted("tiny-vit", f"{MARKER_MODULE}:build", []))
    marker = tmp_path / "attacker-code-ran"
    pp = write_marker_module(tmp_path / "attacker", marker)
    env = {"LOOKALIKE_HOME": str(home), "PYTHONPATH": f"{ROOT}{os.pathsep}{pp}"}
    run_cli("index", "--library", str(lib), "--rebuild", "-q", env=env, check=True)
    assert not marker.exists()
    proc = run_cli("doctor", "--library", str(lib), "--repair", env=env)
    assert proc.returncode == 0, proc.stderr
    from lookalike.library.folder import LibraryFolder

    with LibraryFolder.open(lib) as library:
        assert library.provenance("tiny-vit")["config"] == get_config("tiny-vit").to_dict()


# -- the same rules through the Python API ------------------------------------------------------


def test_library_config_refuses_unregistered_and_compares_registered():
    tiny = get_config("tiny-vit")
    stored = {"config": {**tiny.to_dict(), "name": "gone", "builder": "os:system"}}
    with pytest.raises(UnregisteredMetricError, match="refusing the library's metric 'gone'"):
        library_config("gone", stored)
    assert library_config("tiny-vit", {"config": tiny.to_dict()}) == tiny
    changed = {"config": {**tiny.to_dict(), "builder": "os:system"}}
    with pytest.raises(UsageError, match="--rebuild"):
        library_config("tiny-vit", changed)
    assert library_config("tiny-vit", changed, allow_changed=True) == tiny
    with pytest.raises(UsageError):
        library_config("tiny-vit", "not a record")


@pytest.mark.parametrize("builder", ["os:system", f"{MARKER_MODULE}:build", "lookalike.embed.backbones.tiny:other",
                                     "lookalike.embed.backbones.nosuch:build", "lookalike.embed.backbones.vit:build",
                                     "lookalike.embed.backbones..tiny:build", "lookalike.embed.backbones.tiny:build\n"])
def test_builders_outside_the_allow_list_are_never_imported(builder, tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    monkeypatch.syspath_prepend(str(write_marker_module(tmp_path / "pp", marker)))
    with pytest.raises(UnsafeConfigError, match="refusing builder"):
        import_builder(builder)
    config = dataclasses.replace(get_config("tiny-vit"), builder=builder)
    with pytest.raises(UnsafeConfigError):
        create_metric(config)
    assert not marker.exists()
    assert callable(import_builder("lookalike.embed.backbones.tiny:build"))


def test_user_metric_json_with_a_bad_builder_or_path_is_ignored_with_a_warning(caplog):
    folder = user_metrics_dir()
    folder.mkdir(parents=True)
    good = dataclasses.replace(get_config("tiny-vit"), name="mine", test_only=False)
    (folder / "mine.json").write_text(good.to_json())
    (folder / "evil.json").write_text(dataclasses.replace(good, name="evil", builder="os:system").to_json())
    bad_weights = dataclasses.replace(good, name="evil2", weights=(WeightFile(name="../../x.pth"),))
    (folder / "evil2.json").write_text(bad_weights.to_json())
    (folder / "broken.json").write_text("{not json")
    logger = logging.getLogger("lookalike.embed.registry")
    logger.addHandler(caplog.handler)  # the CLI's logging setup may stop propagation
    try:
        names = list_metrics()
    finally:
        logger.removeHandler(caplog.handler)
    assert "mine" in names and "evil" not in names and "evil2" not in names
    warned = {r.getMessage() for r in caplog.records if "ignoring user metric" in r.getMessage()}
    assert len(warned) == 3 and any("os:system" in m for m in warned)
    with pytest.raises(UnsafeConfigError):
        from lookalike.embed.registry import save_user_metric

        save_user_metric(dataclasses.replace(good, name="../../escape"))
    assert not (folder.parent.parent / "escape.json").exists()


@pytest.mark.parametrize("name", ["../x.pth", "../../x.pth", "a/../../x.pth", "/etc/passwd", "C:/x.pth",
                                  "a\\..\\x.pth", "./x.pth", "a//b.pth", "", ".partial/x.pth",
                                  "checksums.json", "a/.hidden", "x.pth\0"])
def test_unsafe_weight_names_are_refused(name):
    wf = WeightFile(name=name, url="http://127.0.0.1:9/x.pth")
    with pytest.raises(UnsafeConfigError):
        cached_path(wf)
    with pytest.raises(UnsafeConfigError):
        check_config(dataclasses.replace(get_config("tiny-vit"), weights=(wf,)))


def test_a_link_in_the_cache_cannot_lead_outside(tmp_path):
    weights_dir().mkdir(parents=True)
    (weights_dir() / "sub").symlink_to(tmp_path)
    with pytest.raises(UnsafeConfigError, match="outside"):
        cached_path(WeightFile(name="sub/x.pth"))
    assert cached_path(WeightFile(name="dir/x.pth")) == weights_dir() / "dir" / "x.pth"


def test_download_to_an_escaping_name_writes_nothing(server):  # noqa: F811
    server.files["x.pth"] = random_bytes(4096)
    weights_dir().mkdir(parents=True)
    for name in ("../escape.pth", str(weights_dir().parent / "abs.pth")):
        with pytest.raises(UnsafeConfigError):
            resolve(WeightFile(name=name, url=server.url("x.pth")), "m")
    assert sorted(p.name for p in weights_dir().parent.iterdir()) == ["weights"]
    assert server.requests == []


def test_package_paths_and_urls_are_checked():
    base = get_config("tiny-vit")
    for wf in (WeightFile(name="a.pth", package="lpips:../../../etc/passwd"),
               WeightFile(name="a.pth", package="os;x:weights/a.pth"),
               WeightFile(name="a.pth", url="file:///etc/passwd")):
        with pytest.raises(UnsafeConfigError):
            check_config(dataclasses.replace(base, weights=(wf,)))
