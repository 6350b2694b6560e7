"""Tests for resumable downloads, selective archive extraction and Hub dataset fetching."""

from __future__ import annotations

import io
import random
import re
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import huggingface_hub
import pytest

from lra.data import download as download_module
from lra.data.download import DownloadError, download, extract, fetch_hub_dataset

PAYLOAD = random.Random(0).randbytes(200_000)
CHUNK = 4096


@dataclass
class ServerSwitches:
    """What the test server does; tests flip these before calling download()."""

    ignore_range: bool = False
    drop_after_bytes: int | None = None  # close the connection after this many body bytes...
    drops_left: int = 0  # ...this many times
    content_length_extra: int = 0  # added to the true Content-Length (a lying server)
    status: int | None = None  # answer every request with this error status instead
    range_headers: list[str | None] = field(default_factory=list)


class FakeRelease:
    """A threaded HTTP server on 127.0.0.1 serving PAYLOAD with Range support."""

    def __init__(self) -> None:
        self.switches = ServerSwitches()
        switches = self.switches

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output quiet

            def do_GET(self) -> None:
                requested = self.headers.get("Range")
                switches.range_headers.append(requested)
                if switches.status is not None:
                    self.send_error(switches.status)
                    return
                start = 0
                match = re.fullmatch(r"bytes=(\d+)-", requested or "")
                if match and not switches.ignore_range:
                    start = int(match[1])
                    if start >= len(PAYLOAD):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(PAYLOAD)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    last = len(PAYLOAD) - 1
                    self.send_header("Content-Range", f"bytes {start}-{last}/{len(PAYLOAD)}")
                else:
                    self.send_response(200)
                body = PAYLOAD[start:]
                self.send_header("Content-Length", str(len(body) + switches.content_length_extra))
                self.end_headers()
                if switches.drops_left and switches.drop_after_bytes is not None:
                    switches.drops_left -= 1
                    body = body[: switches.drop_after_bytes]
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/lra_release.gz"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> FakeRelease:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def release() -> Iterator[FakeRelease]:
    with FakeRelease() as server:
        yield server


@pytest.fixture(autouse=True)
def no_retry_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download_module, "_RETRY_BACKOFF_S", 0.0)


def fetch(release: FakeRelease, dest: Path, **options: object) -> Path:
    return download(release.url, dest, chunk_bytes=CHUNK, progress=False, **options)


def test_full_download_is_byte_identical_and_leaves_no_part(release: FakeRelease, tmp_path: Path) -> None:
    dest = tmp_path / "sub" / "lra_release.gz"
    assert fetch(release, dest, expected_size=len(PAYLOAD)) == dest
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "sub" / "lra_release.gz.part").exists()
    assert release.switches.range_headers == [None]


def test_progress_bar_path_downloads_too(release: FakeRelease, tmp_path: Path) -> None:
    dest = download(release.url, tmp_path / "a.gz", chunk_bytes=CHUNK, progress=True)
    assert dest.read_bytes() == PAYLOAD


def test_resume_from_partial_part_uses_range(release: FakeRelease, tmp_path: Path) -> None:
    dest = tmp_path / "a.gz"
    (tmp_path / "a.gz.part").write_bytes(PAYLOAD[:12_345])
    fetch(release, dest)
    assert release.switches.range_headers == ["bytes=12345-"]
    assert dest.read_bytes() == PAYLOAD


def test_server_ignoring_range_restarts_cleanly(release: FakeRelease, tmp_path: Path) -> None:
    release.switches.ignore_range = True
    dest = tmp_path / "a.gz"
    (tmp_path / "a.gz.part").write_bytes(b"x" * 5000)  # wrong bytes: must not survive
    fetch(release, dest, expected_size=len(PAYLOAD))
    assert release.switches.range_headers == ["bytes=5000-"]
    assert dest.read_bytes() == PAYLOAD


def test_truncated_transfer_keeps_part_and_rerun_resumes(release: FakeRelease, tmp_path: Path) -> None:
    release.switches.drop_after_bytes, release.switches.drops_left = 70_000, 1
    dest = tmp_path / "a.gz"
    with pytest.raises(DownloadError, match=r"incomplete.*70,000 bytes.*run the same command"):
        fetch(release, dest, retries=0)
    part = tmp_path / "a.gz.part"
    assert part.read_bytes() == PAYLOAD[:70_000]
    assert not dest.exists()
    fetch(release, dest, retries=0)
    assert release.switches.range_headers == [None, "bytes=70000-"]
    assert dest.read_bytes() == PAYLOAD and not part.exists()


def test_retries_resume_within_one_call(release: FakeRelease, tmp_path: Path) -> None:
    release.switches.drop_after_bytes, release.switches.drops_left = 50_000, 2
    dest = fetch(release, tmp_path / "a.gz", retries=2, expected_size=len(PAYLOAD))
    assert release.switches.range_headers == [None, "bytes=50000-", "bytes=100000-"]
    assert dest.read_bytes() == PAYLOAD


def test_existing_complete_file_makes_no_request(release: FakeRelease, tmp_path: Path) -> None:
    dest = tmp_path / "a.gz"
    dest.write_bytes(PAYLOAD)
    assert fetch(release, dest, expected_size=len(PAYLOAD)) == dest
    assert fetch(release, dest) == dest
    assert release.switches.range_headers == []


def test_existing_file_of_wrong_size_is_reported(release: FakeRelease, tmp_path: Path) -> None:
    dest = tmp_path / "a.gz"
    dest.write_bytes(PAYLOAD[:10])
    with pytest.raises(DownloadError, match=r"a\.gz exists but holds 10 bytes.*Delete it"):
        fetch(release, dest, expected_size=len(PAYLOAD))
    assert release.switches.range_headers == []


def test_complete_part_is_renamed_after_416(release: FakeRelease, tmp_path: Path) -> None:
    (tmp_path / "a.gz.part").write_bytes(PAYLOAD)
    dest = fetch(release, tmp_path / "a.gz")
    assert release.switches.range_headers == [f"bytes={len(PAYLOAD)}-"]
    assert dest.read_bytes() == PAYLOAD


def test_overstated_content_length_is_incomplete_until_the_server_confirms_the_size(
    release: FakeRelease, tmp_path: Path
) -> None:
    release.switches.content_length_extra = 10
    with pytest.raises(DownloadError, match=r"incomplete.*200,000 of 200,010.*resume"):
        fetch(release, tmp_path / "a.gz", retries=0)
    assert (tmp_path / "a.gz.part").read_bytes() == PAYLOAD
    assert not (tmp_path / "a.gz").exists()
    # the resume request is answered 416 "bytes */200000": the .part holds the whole file
    assert fetch(release, tmp_path / "a.gz", retries=0).read_bytes() == PAYLOAD
    assert release.switches.range_headers == [None, f"bytes={len(PAYLOAD)}-"]


@pytest.mark.parametrize("extra", [10, -10])
def test_content_length_disagreeing_with_expected_size_fails_early(
    release: FakeRelease, tmp_path: Path, extra: int
) -> None:
    release.switches.content_length_extra = extra
    with pytest.raises(DownloadError, match=rf"reports {len(PAYLOAD) + extra:,} bytes but 200,000"):
        fetch(release, tmp_path / "a.gz", expected_size=len(PAYLOAD))
    assert not (tmp_path / "a.gz").exists()


def test_size_disagreeing_with_expected_fails_before_downloading(
    release: FakeRelease, tmp_path: Path
) -> None:
    with pytest.raises(DownloadError, match=r"reports 200,000 bytes but 200,005 were expected"):
        fetch(release, tmp_path / "a.gz", expected_size=len(PAYLOAD) + 5)
    assert not (tmp_path / "a.gz").exists()


def test_http_error_names_status_and_url(release: FakeRelease, tmp_path: Path) -> None:
    release.switches.status = 404
    with pytest.raises(DownloadError, match=r"lra_release\.gz answered HTTP 404"):
        fetch(release, tmp_path / "a.gz")
    assert len(release.switches.range_headers) == 1  # a 404 is not retried


def test_busy_server_is_retried_then_reported(release: FakeRelease, tmp_path: Path) -> None:
    release.switches.status = 503
    with pytest.raises(DownloadError, match=r"could not download .* 3 attempt\(s\): HTTP 503"):
        fetch(release, tmp_path / "a.gz", retries=2)
    assert len(release.switches.range_headers) == 3


def test_unreachable_host_is_reported(tmp_path: Path) -> None:
    with FakeRelease() as gone:
        url = gone.url  # the port is closed once the server stops
    with pytest.raises(DownloadError, match=r"could not download .*Check the network"):
        download(url, tmp_path / "a.gz", progress=False, retries=0)


# Extraction ----------------------------------------------------------------------------------

RELEASE_FILES = {
    "listops-1000/basic_train.tsv": b"Source\tTarget\n( [MAX 2 9 ] )\t9\n",
    "listops-1000/basic_test.tsv": b"Source\tTarget\n( [MIN 2 9 ] )\t2\n",
    "tsv_data/new_aan_pairs.train.tsv": b"1\ta\tb\ttext one\ttext two\n",
    "tsv_data/other.tsv": b"unrelated\n",
    "pathfinder32/curv_contour_length_14/imgs/0/sample_0.png": random.Random(1).randbytes(3000),
    "pathfinder32/curv_baseline/imgs/0/sample_172.png": b"",  # empty in the real release too
}
WANTED = ("listops-1000/", "tsv_data/new_aan_pairs", "pathfinder32/curv_contour_length_14/")


def add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def build_archive(path: Path, root: str, raw_members: dict[str, bytes] | None = None) -> Path:
    """Write RELEASE_FILES below `root`, then `raw_members` under their names as given."""
    with tarfile.open(path, "w:gz") as tar:
        if root:
            directory = tarfile.TarInfo(root.rstrip("/"))
            directory.type = tarfile.DIRTYPE
            tar.addfile(directory)
        for name, data in RELEASE_FILES.items():
            add_file(tar, root + name, data)
        for name, data in (raw_members or {}).items():
            add_file(tar, name, data)
    return path


def files_under(folder: Path) -> dict[str, bytes]:
    return {
        path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()
    }


@pytest.mark.parametrize("root", ["", "lra_release/", "lra_release/lra_release/", "./lra_release/"], ids=repr)
def test_extract_selects_prefixes_at_any_nesting(tmp_path: Path, root: str) -> None:
    archive = build_archive(tmp_path / "lra_release.gz", root)
    out = tmp_path / "out"
    assert extract(archive, out, WANTED, progress=False) == 4
    expected = {name: data for name, data in RELEASE_FILES.items() if name.startswith(WANTED)}
    assert files_under(out) == expected


def test_extract_resumes_by_skipping_complete_files(tmp_path: Path) -> None:
    archive = build_archive(tmp_path / "lra_release.gz", "lra_release/lra_release/")
    out = tmp_path / "out"
    assert extract(archive, out, WANTED, progress=True) == 4
    assert extract(archive, out, WANTED, progress=False) == 0
    (out / "listops-1000/basic_train.tsv").unlink()
    (out / "listops-1000/basic_test.tsv").write_bytes(b"half")
    assert extract(archive, out, ["listops-1000/"], progress=False) == 2
    rewritten = "listops-1000/basic_test.tsv"
    assert (out / rewritten).read_bytes() == RELEASE_FILES[rewritten]
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.parametrize("name", ["../evil", "lra_release/../../evil", "/tmp/evil"])
def test_extract_refuses_paths_leaving_the_destination(tmp_path: Path, name: str) -> None:
    archive = build_archive(tmp_path / "bad.gz", "lra_release/", raw_members={name: b"pwned"})
    with pytest.raises(DownloadError, match=r"bad\.gz holds an unsafe member .*evil.*delete it"):
        extract(archive, tmp_path / "out", ["listops-1000/"], progress=False)
    assert not (tmp_path / "evil").exists()


@pytest.mark.parametrize("target", ["../../outside", "/etc/passwd"])
def test_extract_refuses_links_leaving_the_destination(tmp_path: Path, target: str) -> None:
    archive = tmp_path / "bad.gz"
    with tarfile.open(archive, "w:gz") as tar:
        link = tarfile.TarInfo("lra_release/lra_release/listops-1000/link")
        link.type, link.linkname = tarfile.SYMTYPE, target
        tar.addfile(link)
    with pytest.raises(DownloadError, match=r"unsafe member .*link.*->"):
        extract(archive, tmp_path / "out", ["listops-1000/"], progress=False)


def test_extract_refuses_chained_links_leaving_the_destination(tmp_path: Path) -> None:
    archive = tmp_path / "bad.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, target in [("data/up", ".."), ("data/up/escape", "..")]:
            link = tarfile.TarInfo(f"lra_release/{name}")
            link.type, link.linkname = tarfile.SYMTYPE, target
            tar.addfile(link)
        add_file(tar, "lra_release/data/up/escape/evil", b"pwned")
    out = tmp_path / "out"
    with pytest.raises(DownloadError, match=r"'lra_release/data/up/escape' would land outside"):
        extract(archive, out, ["data/"], progress=False)
    assert not (tmp_path / "evil").exists()


def test_extract_keeps_links_inside_the_destination(tmp_path: Path) -> None:
    archive = tmp_path / "links.gz"
    with tarfile.open(archive, "w:gz") as tar:
        add_file(tar, "lra_release/data/a.txt", b"alpha")
        hard = tarfile.TarInfo("lra_release/data/hard.txt")
        hard.type, hard.linkname = tarfile.LNKTYPE, "lra_release/data/a.txt"
        soft = tarfile.TarInfo("lra_release/data/soft.txt")
        soft.type, soft.linkname = tarfile.SYMTYPE, "a.txt"
        tar.addfile(hard)
        tar.addfile(soft)
    out = tmp_path / "out"
    assert extract(archive, out, ["data/"], progress=False) == 3
    assert (out / "data/hard.txt").read_bytes() == b"alpha"
    assert (out / "data/soft.txt").is_symlink() and (out / "data/soft.txt").read_bytes() == b"alpha"


def test_truncated_archive_says_delete_and_download_again(tmp_path: Path) -> None:
    archive = build_archive(tmp_path / "lra_release.gz", "lra_release/")
    whole = archive.read_bytes()
    archive.write_bytes(whole[: len(whole) // 2])
    message = r"lra_release\.gz is corrupt or truncated.*delete it and download it again"
    with pytest.raises(DownloadError, match=message):
        extract(archive, tmp_path / "out", WANTED, progress=False)


def test_extract_rejects_missing_archive_and_bad_prefixes(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=r"missing\.gz does not exist"):
        extract(tmp_path / "missing.gz", tmp_path / "out", WANTED, progress=False)
    with pytest.raises(ValueError, match="non-empty sequence"):
        extract(tmp_path / "missing.gz", tmp_path / "out", "listops-1000/", progress=False)
    with pytest.raises(ValueError, match="relative path"):
        extract(tmp_path / "missing.gz", tmp_path / "out", ["../x"], progress=False)


# Hub datasets --------------------------------------------------------------------------------


def fake_snapshot_download(
    monkeypatch: pytest.MonkeyPatch, files: list[str], error: Exception | None = None
) -> list[dict[str, object]]:
    """Replace the Hub client: record each call, write `files` below local_dir or raise `error`."""
    calls: list[dict[str, object]] = []

    def snapshot_download(*, repo_id: str, repo_type: str, allow_patterns: list[str], local_dir: Path) -> str:
        calls.append({"repo_id": repo_id, "repo_type": repo_type, "patterns": allow_patterns})
        if error is not None:
            raise error
        for name in files:
            (Path(local_dir) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(local_dir) / name).write_bytes(b"PAR1")
        return str(local_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return calls


def test_fetch_hub_dataset_returns_config_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_snapshot_download(monkeypatch, ["plain_text/train-00000-of-00001.parquet"])
    folder = fetch_hub_dataset("stanfordnlp/imdb", tmp_path / "imdb")
    assert folder == tmp_path / "imdb" / "plain_text"
    assert (folder / "train-00000-of-00001.parquet").is_file()
    assert calls == [{"repo_id": "stanfordnlp/imdb", "repo_type": "dataset", "patterns": ["plain_text/*"]}]


def test_fetch_hub_dataset_without_parquet_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_snapshot_download(monkeypatch, ["plain_text/README.md"])
    with pytest.raises(DownloadError, match=r"no \.parquet files in .*plain_text.*uoft-cs/cifar10"):
        fetch_hub_dataset("uoft-cs/cifar10", tmp_path / "cifar")


def test_fetch_hub_dataset_offline_explains_manual_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_snapshot_download(monkeypatch, [], error=ConnectionError("Name or service not known"))
    dest = tmp_path / "cifar"
    page = r"huggingface\.co/datasets/uoft-cs/cifar10/tree/main/plain_text"
    with pytest.raises(DownloadError, match=rf"service not known.*{page}.*cifar/plain_text/"):
        fetch_hub_dataset("uoft-cs/cifar10", dest)
    # files placed there by hand are used when the Hub cannot be reached
    (dest / "plain_text").mkdir(parents=True)
    (dest / "plain_text" / "test-00000-of-00001.parquet").write_bytes(b"PAR1")
    assert fetch_hub_dataset("uoft-cs/cifar10", dest) == dest / "plain_text"
