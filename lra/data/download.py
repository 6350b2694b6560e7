"""Resumable downloads of the LRA release and Hub datasets, and safe partial archive extraction."""

from __future__ import annotations

import http.client
import logging
import os
import posixpath
import re
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import huggingface_hub
from huggingface_hub.errors import HTTPError as HubHTTPError
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from lra.atomic import write_atomic

LRA_RELEASE_URL = "https://storage.googleapis.com/long-range-arena/lra_release.gz"

_RELEASE_ROOT = "lra_release"
_MAX_RELEASE_NESTING = 2  # the published archive nests lra_release/lra_release/
_SOCKET_TIMEOUT_S = 60.0
_RETRY_BACKOFF_S = 2.0  # doubled after every failed attempt
_TRANSIENT_HTTP_CODES = frozenset({408, 429, 500, 502, 503, 504})
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes \*/(\d+)")

log = logging.getLogger(__name__)


class DownloadError(Exception):
    """A download or extraction that cannot finish; the message says what to do about it."""


class _TransientError(Exception):
    """A failure worth retrying with resume: dropped connection, timeout, busy server."""


def _progress_bar(enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),  # keeps the bar out of piped stdout
        disable=not enabled,
    )


def download(
    url: str,
    dest: Path,
    *,
    expected_size: int | None = None,
    chunk_bytes: int = 1 << 20,
    progress: bool = True,
    retries: int = 3,
) -> Path:
    """Download `url` to `dest` through `dest.part`, resuming a previous attempt; return `dest`.

    An existing `dest` is trusted (it only appears by renaming a complete, size-checked `.part`)
    unless `expected_size` says otherwise.
    """
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"download url must start with http:// or https://, got {url!r}")
    if chunk_bytes <= 0 or retries < 0:
        raise ValueError(f"need chunk_bytes > 0 and retries >= 0, got {chunk_bytes} and {retries}")
    dest = Path(dest)
    if dest.is_file():
        size = dest.stat().st_size
        if expected_size is None or size == expected_size:
            return dest
        raise DownloadError(
            f"{dest} exists but holds {size:,} bytes instead of the expected {expected_size:,}: "
            "it is not the file this step needs. Delete it and run again."
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    with _progress_bar(progress) as bar:
        task = bar.add_task(dest.name, total=expected_size)
        for attempt in range(retries + 1):
            try:
                _fetch_into(url, part, expected_size, chunk_bytes, bar, task)
                break
            except _TransientError as err:
                if attempt == retries:
                    raise DownloadError(_incomplete_message(url, part, attempt + 1, err)) from err
                pause = _RETRY_BACKOFF_S * 2**attempt
                log.warning("download of %s interrupted (%s); resuming in %.0f s", url, err, pause)
                time.sleep(pause)
    os.replace(part, dest)
    return dest


def _incomplete_message(url: str, part: Path, attempts: int, err: Exception) -> str:
    received = part.stat().st_size if part.exists() else 0
    if received == 0:
        return (
            f"could not download {url} after {attempts} attempt(s): {err}. "
            "Check the network connection (or proxy settings) and run the same command again."
        )
    return (
        f"download of {url} is incomplete after {attempts} attempt(s): {err}. "
        f"The {received:,} bytes received so far are kept in {part}; "
        "run the same command again to resume from there."
    )


def _fetch_into(
    url: str, part: Path, expected_size: int | None, chunk_bytes: int, bar: Progress, task: int
) -> None:
    """One attempt: append the missing bytes to `part`; raise _TransientError when cut short."""
    offset = part.stat().st_size if part.exists() else 0
    if expected_size is not None and offset == expected_size:
        return  # complete already; an earlier run stopped just before the rename
    if expected_size is not None and offset > expected_size:
        part.unlink()  # left over from some other file: it cannot be resumed
        offset = 0
    headers = {"Accept-Encoding": "identity", "User-Agent": "lra-harness"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=_SOCKET_TIMEOUT_S
        )
    except urllib.error.HTTPError as err:
        err.close()
        if err.code == 416 and offset:
            _accept_or_discard_unresumable(err.headers.get("Content-Range", ""), part, offset)
            return
        if err.code in _TRANSIENT_HTTP_CODES:
            raise _TransientError(f"HTTP {err.code} {err.reason}") from err
        raise DownloadError(
            f"{url} answered HTTP {err.code} {err.reason}; check the URL, "
            "and whether a proxy or firewall blocks it."
        ) from err
    except (http.client.HTTPException, OSError) as err:  # URLError is an OSError
        raise _TransientError(str(err)) from err
    with response:
        start, total = _response_extent(response, part, offset)
        if expected_size is not None and total is not None and total != expected_size:
            raise DownloadError(
                f"{url} reports {total:,} bytes but {expected_size:,} were expected: the file on "
                "the server changed or the URL is wrong; nothing more was downloaded."
            )
        target = expected_size if expected_size is not None else total
        bar.update(task, total=target, completed=start)
        with part.open("ab" if start else "wb") as out:  # "wb": the server restarts from byte 0
            while True:
                try:
                    chunk = response.read(chunk_bytes)
                except (http.client.HTTPException, OSError) as err:
                    raise _TransientError(f"connection lost: {err}") from err
                if not chunk:
                    break
                out.write(chunk)
                bar.advance(task, len(chunk))
    size = part.stat().st_size
    if target is None or size == target:
        return
    if size < target:
        raise _TransientError(f"connection closed after {size:,} of {target:,} bytes")
    raise DownloadError(
        f"{part} holds {size:,} bytes, more than the {target:,} expected from {url}: "
        "the server sent a different file. Delete the .part file and run again."
    )


def _response_extent(response: http.client.HTTPResponse, part: Path, offset: int) -> tuple[int, int | None]:
    """Return (first byte in the body, total file size if known) of a 200 or 206 response."""
    if offset and response.status == 206:
        match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
        if match is None or int(match[1]) != offset:
            part.unlink()  # a resume the server cannot line up with: start over next attempt
            raise _TransientError(f"server resumed at the wrong position ({match and match[0]})")
        return offset, None if match[3] == "*" else int(match[3])
    length = response.headers.get("Content-Length")
    return 0, int(length) if length is not None else None


def _accept_or_discard_unresumable(content_range: str, part: Path, offset: int) -> None:
    """Handle HTTP 416: the `.part` is either complete already or cannot be resumed."""
    match = _UNSATISFIED_RANGE.fullmatch(content_range.strip())
    if match is not None and int(match[1]) == offset:
        return
    part.unlink()
    raise _TransientError("the server cannot resume this partial file; starting over")


def extract(archive: Path, dest_dir: Path, prefixes: Sequence[str], *, progress: bool = True) -> int:
    """Extract the members of `archive` whose path below `lra_release/` starts with a prefix.

    Streams the archive in one pass, writes every file atomically to `dest_dir/<path>`, skips
    files already there with the right size, and returns how many files it wrote.
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    if isinstance(prefixes, str) or not prefixes:
        raise ValueError(f"prefixes must be a non-empty sequence of strings, got {prefixes!r}")
    wanted = tuple(prefixes)
    for prefix in wanted:
        if prefix.startswith("/") or ".." in PurePosixPath(prefix).parts:
            raise ValueError(f"prefix {prefix!r} must be a relative path inside the release")
    if not archive.is_file():
        raise DownloadError(f"{archive} does not exist; download the archive before extracting it")
    root = dest_dir.resolve()
    written = 0
    with _progress_bar(progress) as bar:
        with bar.open(archive, "rb", description=f"extracting {archive.name}") as reader:
            try:
                with tarfile.open(fileobj=reader, mode="r|*") as tar:
                    for member in tar:
                        relative = _release_path(archive, member)
                        if relative is not None and relative.startswith(wanted):
                            written += _extract_member(archive, tar, member, relative, root)
            except (tarfile.TarError, EOFError) as err:
                raise DownloadError(
                    f"{archive} is corrupt or truncated ({err}); delete it and download it again"
                ) from err
    return written


def _strip_release_root(name: str) -> list[str]:
    parts = [part for part in PurePosixPath(name).parts if part != "."]
    for _ in range(_MAX_RELEASE_NESTING):
        if parts[:1] == [_RELEASE_ROOT]:
            parts = parts[1:]
    return parts


def _release_path(archive: Path, member: tarfile.TarInfo) -> str | None:
    """Return the member's path below the release root, refusing any path that could escape it."""
    parts = _strip_release_root(member.name)
    unsafe = member.name.startswith("/") or ".." in parts
    if member.issym():
        # resolved from where the link lands in dest_dir, not where it sits in the archive
        pointed = posixpath.normpath(posixpath.join("/".join(parts[:-1]), member.linkname))
        unsafe |= member.linkname.startswith("/") or pointed.split("/")[0] == ".."
    elif member.islnk():
        unsafe |= member.linkname.startswith("/") or ".." in PurePosixPath(member.linkname).parts
    elif not (member.isfile() or member.isdir()):
        unsafe = True  # devices and fifos have no place in a data archive
    if unsafe:
        link = f" -> {member.linkname!r}" if member.issym() or member.islnk() else ""
        raise DownloadError(
            f"{archive} holds an unsafe member {member.name!r}{link} (absolute path, '..', link "
            "leaving the archive or special file); refusing to extract. This is not the LRA "
            "release as published: delete it and download it again."
        )
    return "/".join(parts) if parts else None


def _extract_member(
    archive: Path, tar: tarfile.TarFile, member: tarfile.TarInfo, relative: str, root: Path
) -> int:
    """Write one member below the resolved folder `root`; return how many files were written."""
    target = root / relative
    linked = root / "/".join(_strip_release_root(member.linkname))
    # links extracted earlier could still lead outside through a chain the name check cannot see
    escapes = not _resolves_inside(root, target.parent) or (
        (member.issym() and not _resolves_inside(root, target.parent / member.linkname))
        or (member.islnk() and not _resolves_inside(root, linked))
    )
    if escapes:
        raise DownloadError(
            f"{archive} member {member.name!r} would land outside {root} through a link "
            "extracted earlier; refusing to extract. Delete the archive and download it again."
        )
    if member.isdir():
        target.mkdir(parents=True, exist_ok=True)
        return 0
    if member.issym():
        if target.is_symlink() and os.readlink(target) == member.linkname:
            return 0
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.link.tmp")
        temporary.unlink(missing_ok=True)
        os.symlink(member.linkname, temporary)
        os.replace(temporary, target)
        return 1
    if member.islnk():
        # a streamed archive cannot seek back to the linked data: copy the file written earlier
        source = linked
        if not source.is_file():
            raise DownloadError(
                f"{archive} member {member.name!r} links to {member.linkname!r}, which was not "
                "extracted; add that file's folder to the prefixes to extract"
            )
        if target.is_file() and target.stat().st_size == source.stat().st_size:
            return 0
        with source.open("rb") as data:
            write_atomic(target, data, sync=False)
        return 1
    if target.is_file() and target.stat().st_size == member.size:
        return 0
    data = tar.extractfile(member)
    assert data is not None, "regular members always have data"
    write_atomic(target, data, sync=False)
    return 1


def _resolves_inside(root: Path, path: Path) -> bool:
    return path.resolve().is_relative_to(root)


def fetch_hub_dataset(repo_id: str, dest_dir: Path, *, config: str = "plain_text") -> Path:
    """Download the parquet files of one Hub dataset config to `dest_dir/<config>/`; return it.

    Without network access, parquet files already placed there by hand are used as they are.
    """
    dest_dir = Path(dest_dir)
    config_dir = dest_dir / config
    try:
        huggingface_hub.snapshot_download(
            repo_id=repo_id,
            repo_type="dataset",
            allow_patterns=[f"{config}/*"],
            local_dir=dest_dir,
        )
    except (OSError, HubHTTPError) as err:
        if any(config_dir.glob("*.parquet")):
            log.warning("Hub unreachable (%s); using the parquet files in %s", err, config_dir)
            return config_dir
        raise DownloadError(
            f"could not download {config}/ of the Hub dataset {repo_id}: {err}. To obtain it by "
            f"hand, fetch the .parquet files from {_hub_page(repo_id)}/{config} and put them in "
            f"{config_dir}/ (for example {config_dir}/train-00000-of-00001.parquet and "
            "test-00000-of-00001.parquet), then run again."
        ) from err
    if not any(config_dir.glob("*.parquet")):
        raise DownloadError(
            f"no .parquet files in {config_dir} after downloading the Hub dataset {repo_id}: "
            f"check that config {config!r} exists at {_hub_page(repo_id)}"
        )
    return config_dir


def _hub_page(repo_id: str) -> str:
    return f"https://huggingface.co/datasets/{repo_id}/tree/main"
