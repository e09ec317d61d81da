"""resolve()/fetch()/verify() against a real HTTP server on 127.0.0.1 that can misbehave."""

from __future__ import annotations

import json
import socket

import pytest
from tests.weights_server import (  # noqa: F401 (server is a fixture)
    add_metric,
    cache_files,
    make_zip,
    random_bytes,
    server,
    sha256,
)

from lookalike.embed.weights import checksums
from lookalike.embed.weights import transfer as download
from lookalike.embed.config import WeightFile
from lookalike.embed.weights import cached_path, fetch, is_present, resolve, verify
from lookalike.errors import WeightsCorruptError, WeightsMissingError
from lookalike.paths import weights_dir

SIZE = 300_000


def served(server, name: str, data: bytes, **kw) -> WeightFile:  # noqa: F811
    server.files[name] = data
    return WeightFile(name=name, url=server.url(name), **kw)


def parts_left() -> list[str]:
    """Staged downloads still in the cache (lock files are not data)."""
    return [f for f in cache_files(weights_dir()) if f.endswith((".part", ".import"))]


def assert_remedies(message: str, metric: str) -> None:
    assert f"lookalike weights fetch {metric}" in message
    assert "lookalike weights import DIR" in message
    assert "LOOKALIKE_WEIGHTS_MIRROR" in message
    assert "effnet-lite0" in message


def test_fresh_download_is_verified_and_placed(server):  # noqa: F811
    data = random_bytes(SIZE)
    wf = served(server, "net.pth", data, sha256=sha256(data))
    assert not is_present(wf)
    path = resolve(wf, "m")
    assert path == weights_dir() / "net.pth"
    assert path.read_bytes() == data
    assert is_present(wf)
    (req,) = server.gets("net.pth")
    assert req["range"] is None and req["user_agent"].startswith("lookalike/")
    assert parts_left() == []
    assert checksums.entry("net.pth")["sha256"] == sha256(data)
    assert resolve(wf, "m") == path
    assert len(server.gets("net.pth")) == 1  # no second download once cached


def test_sha256_prefix_in_the_torchvision_style_is_accepted(server):  # noqa: F811
    data = random_bytes(5000)
    name = f"alexnet-owt-{sha256(data)[:8]}.pth"
    wf = served(server, name, data, sha256=sha256(data)[:8])
    assert resolve(wf).read_bytes() == data


@pytest.mark.parametrize("bad", ["wrong-prefix", "full"])
def test_corrupt_download_is_rejected_and_nothing_is_placed(server, bad):  # noqa: F811
    data = random_bytes(SIZE)
    expected = sha256(data)
    wf = served(server, "net.pth", data, sha256=expected[:10] if bad == "wrong-prefix" else expected)
    server.corrupt = True
    with pytest.raises(WeightsCorruptError, match="sha256"):
        resolve(wf, "m")
    assert not cached_path(wf).exists()
    assert parts_left() == []
    server.corrupt = False  # a good server afterwards: a clean fresh download
    assert resolve(wf, "m").read_bytes() == data
    assert server.gets("net.pth")[-1]["range"] is None


def test_interrupted_download_resumes_with_a_range_request(server):  # noqa: F811
    data = random_bytes(SIZE)
    wf = served(server, "net.pth", data, sha256=sha256(data))
    server.cut_after, server.cuts = 100_000, 1
    assert resolve(wf, "m").read_bytes() == data
    first, second = server.gets("net.pth")
    assert first["range"] is None
    assert second["range"] == "bytes=100000-"


def test_interrupted_download_restarts_when_the_server_ignores_range(server):  # noqa: F811
    data = random_bytes(SIZE)
    wf = served(server, "net.pth", data, sha256=sha256(data))
    server.cut_after, server.cuts, server.ignore_range = 100_000, 1, True
    assert resolve(wf, "m").read_bytes() == data  # no bytes appended twice
    assert [r["range"] for r in server.gets("net.pth")] == [None, "bytes=100000-"]


def test_partial_download_survives_failed_attempts_and_resumes_later(server):  # noqa: F811
    data = random_bytes(SIZE)
    wf = served(server, "net.pth", data, sha256=sha256(data))
    server.cut_after, server.cuts = 50_000, 2
    with pytest.raises(WeightsMissingError) as err:
        fetch(wf, "m", attempts=2)
    assert_remedies(str(err.value), "m")
    assert not cached_path(wf).exists()
    (part,) = parts_left()
    assert (weights_dir() / part).stat().st_size == 100_000
    assert resolve(wf, "m").read_bytes() == data
    assert server.gets("net.pth")[-1]["range"] == "bytes=100000-"
    assert parts_left() == []


def test_stale_partial_beyond_the_file_end_restarts(server):  # noqa: F811
    data = random_bytes(10_000)
    wf = served(server, "net.pth", data, sha256=sha256(data))
    (weights_dir() / ".partial").mkdir(parents=True)
    (weights_dir() / ".partial" / "net.pth.part").write_bytes(random_bytes(20_000))
    assert resolve(wf).read_bytes() == data
    assert [r["range"] for r in server.gets("net.pth")] == ["bytes=20000-", None]


@pytest.mark.parametrize("var,value,offline", [("LOOKALIKE_OFFLINE", "1", True),
                                               ("HF_HUB_OFFLINE", "1", True),
                                               ("LOOKALIKE_OFFLINE", "0", False)])
def test_offline_variables_refuse_with_the_remedies(server, monkeypatch, var, value, offline):  # noqa: F811
    data = random_bytes(1000)
    wf = served(server, "net.pth", data, sha256=sha256(data))
    monkeypatch.setenv(var, value)
    if not offline:
        assert resolve(wf, "m").read_bytes() == data
        return
    with pytest.raises(WeightsMissingError) as err:
        resolve(wf, "m")
    assert_remedies(str(err.value), "m")
    assert var in str(err.value)
    assert server.requests == []
    assert not weights_dir().exists() or cache_files(weights_dir()) == []


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_refuses_with_the_remedies():
    wf = WeightFile(name="net.pth", url=f"http://127.0.0.1:{closed_port()}/net.pth", sha256="ab" * 32)
    with pytest.raises(WeightsMissingError) as err:
        resolve(wf, "m")
    assert_remedies(str(err.value), "m")
    assert "cannot reach" in str(err.value)
    assert not cached_path(wf).exists() and parts_left() == []


def test_server_that_never_answers_times_out(monkeypatch):
    monkeypatch.setattr(download, "TIMEOUT_S", 0.3)
    with socket.socket() as s:  # listens, never accepts: the request hangs until the timeout
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        wf = WeightFile(name="net.pth", url=f"http://127.0.0.1:{s.getsockname()[1]}/net.pth")
        with pytest.raises(WeightsMissingError, match="timed out"):
            resolve(wf, "m")
    assert not cached_path(wf).exists() and parts_left() == []


def test_http_error_is_a_missing_weights_error(server):  # noqa: F811
    wf = WeightFile(name="absent.pth", url=server.url("absent.pth"))
    with pytest.raises(WeightsMissingError, match="HTTP 404"):
        resolve(wf, "m")
    assert not cached_path(wf).exists()


def test_no_url_and_no_mirror_is_a_missing_weights_error():
    with pytest.raises(WeightsMissingError, match="no download URL"):
        resolve(WeightFile(name="net.pth"), "m")


@pytest.mark.parametrize("official", [True, False])
def test_mirror_variable_replaces_the_official_url(server, monkeypatch, official):  # noqa: F811
    data = random_bytes(2000)
    server.files["mirror/sub/net.pth"] = data
    url = f"http://127.0.0.1:{closed_port()}/net.pth" if official else None
    wf = WeightFile(name="sub/net.pth", url=url, sha256=sha256(data))
    monkeypatch.setenv("LOOKALIKE_WEIGHTS_MIRROR", server.url("mirror") + "/")
    assert resolve(wf, "m").read_bytes() == data
    assert [r["path"] for r in server.requests] == ["/mirror/sub/net.pth"]
    assert cached_path(wf) == weights_dir() / "sub" / "net.pth"


def test_trust_on_first_use_pins_then_verify_detects_tampering(server):  # noqa: F811
    data = random_bytes(SIZE)
    wf = served(server, "dino.pth", data)  # no published checksum
    add_metric("m", [wf])
    path = resolve(wf, "m")
    record = json.loads((weights_dir() / "checksums.json").read_text())["files"]["dino.pth"]
    assert record["sha256"] == sha256(data) and record["trust"] == "pinned"
    assert [(r.name, r.status) for r in verify(["m"])] == [("dino.pth", "ok")]

    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    (result,) = verify(["m"])
    assert result.status == "corrupt" and sha256(data) in result.detail

    path.unlink()  # the pin outlives the file: a different download is refused
    server.files["dino.pth"] = random_bytes(SIZE)
    with pytest.raises(WeightsCorruptError):
        resolve(wf, "m")
    assert not path.exists()
    assert [r.status for r in verify(["m"])] == ["missing"]


def test_verify_reports_a_file_without_any_checksum_and_pins_only_when_asked(server):  # noqa: F811
    wf = WeightFile(name="x.pth", url=server.url("x.pth"))
    add_metric("m", [wf])
    weights_dir().mkdir(parents=True)
    data = random_bytes(1000)
    (weights_dir() / "x.pth").write_bytes(data)  # copied by hand: never fetched or imported
    assert [r.status for r in verify(["m"])] == ["unpinned"]
    assert checksums.entry("x.pth") is None
    assert [r.status for r in verify(["m"], pin=True)] == ["pinned"]
    assert checksums.entry("x.pth")["sha256"] == sha256(data)
    assert [r.status for r in verify(["m"])] == ["ok"]


def test_verify_checks_package_shipped_files():
    (result,) = verify(["effnet-lite0"])
    assert result.status == "ok" and result.path


def test_zip_is_unpacked_with_its_layout_and_verified(server):  # noqa: F811
    members = {"models/": b"", "models/ensemble_lora/adapter_model.bin": random_bytes(4000),
               "models/ensemble_lora/adapter_config.json": b'{"r": 16}'}
    archive = make_zip(members)
    wf = served(server, "dreamsim_checkpoint.zip", archive, unpack=True)
    add_metric("m", [wf])
    folder = resolve(wf, "m")
    assert folder == weights_dir() / "dreamsim_checkpoint" and folder.is_dir()
    for name, data in members.items():
        if not name.endswith("/"):
            assert (folder / name).read_bytes() == data
    assert [f for f in cache_files(weights_dir()) if not f.endswith(".lock")] == sorted(
        ["checksums.json"] + [f"dreamsim_checkpoint/{n}" for n in members if not n.endswith("/")])
    assert checksums.entry(wf.name)["sha256"] == sha256(archive)
    assert resolve(wf, "m") == folder and len(server.gets(wf.name)) == 1
    assert [r.status for r in verify(["m"])] == ["ok"]

    (folder / "models" / "extra.pth").write_bytes(b"x")
    (result,) = verify(["m"])
    assert result.status == "corrupt" and "unexpected" in result.detail
    (folder / "models" / "extra.pth").unlink()
    (folder / "models/ensemble_lora/adapter_config.json").write_bytes(b'{"r": 99}')
    (result,) = verify(["m"])
    assert result.status == "corrupt" and "adapter_config.json" in result.detail


@pytest.mark.parametrize("evil", ["../evil.txt", "models/../../evil.txt", "/tmp/evil.txt"])
def test_path_traversal_zip_is_rejected(server, evil):  # noqa: F811
    archive = make_zip({"models/ok.bin": b"ok", evil: b"pwned"})
    wf = served(server, "ckpt.zip", archive, unpack=True)
    with pytest.raises(WeightsCorruptError, match="path|escapes"):
        resolve(wf, "m")
    assert not cached_path(wf).exists()
    assert not (weights_dir().parent / "evil.txt").exists()
    assert [f for f in cache_files(weights_dir()) if not f.endswith(".lock")] == []
    assert [p.name for p in weights_dir().iterdir() if p.is_dir()] == [".partial"]


def test_download_that_is_not_a_zip_is_rejected(server):  # noqa: F811
    wf = served(server, "ckpt.zip", random_bytes(3000), unpack=True)
    with pytest.raises(WeightsCorruptError, match="zip"):
        resolve(wf, "m")
    assert not cached_path(wf).exists() and parts_left() == []


def test_size_mismatch_is_corrupt(server):  # noqa: F811
    data = random_bytes(1000)
    wf = served(server, "net.pth", data, size=999)
    with pytest.raises(WeightsCorruptError, match="999"):
        resolve(wf)
    assert not cached_path(wf).exists() and parts_left() == []


def test_leftovers_of_a_crashed_unpack_are_cleared(server):  # noqa: F811
    wf = served(server, "ckpt.zip", make_zip({"models/a.bin": b"a"}), unpack=True)
    stale = weights_dir() / ".ckpt.crashed.tmp" / "models"
    stale.mkdir(parents=True)
    (stale / "half.bin").write_bytes(b"half")
    assert (resolve(wf) / "models" / "a.bin").read_bytes() == b"a"
    assert not (weights_dir() / ".ckpt.crashed.tmp").exists()


def test_complete_partial_left_by_a_crash_is_not_downloaded_again(server):  # noqa: F811
    data = random_bytes(10_000)
    wf = served(server, "net.pth", data, sha256=sha256(data))
    (weights_dir() / ".partial").mkdir(parents=True)
    (weights_dir() / ".partial" / "net.pth.part").write_bytes(data)
    assert resolve(wf).read_bytes() == data
    assert [r["range"] for r in server.gets("net.pth")] == ["bytes=10000-"]
