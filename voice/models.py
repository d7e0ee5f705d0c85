"""Vosk model management behind `carecoach models list|fetch|verify` (CONTRACT §1).

Owns: the catalog of known Vosk models (name, URL, archive SHA-256), telling whether a directory is a
usable Vosk model, and installing one: streamed download, SHA-256 check, zip-slip-safe unpack, and an
atomic move into `models_dir/<name>`.

Install layout: `models_dir/<name>/` is the model directory itself (the one holding `am/`, `conf/`,
`graph/`), whatever the archive's own top-level folder was. Work in progress lives in hidden
`.fetch-*` files and `.unpack-*` directories inside `models_dir` (same filesystem, so the final
`rename` is atomic) and is removed on any failure; a failed fetch leaves `models_dir` as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import aiohttp

BASE_URL_ENV = "CARECOACH_MODELS_BASE_URL"
DEFAULT_BASE_URL = "https://alphacephei.com/vosk/models"
CHUNK = 1 << 16
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
_LOAD_TIMEOUT = 300.0  # the big en-us model takes tens of seconds to load on a slow disk

Progress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class ModelInfo:
    name: str
    url: str
    sha256: str  # SHA-256 of the published .zip; "" when not known (fetch then needs --sha256)
    size_mb: int  # download size
    lang: str
    sample_rate: int


def _entry(name: str, sha256: str, size_mb: int, lang: str = "en-us", sample_rate: int = 16000) -> ModelInfo:
    return ModelInfo(name, f"{DEFAULT_BASE_URL}/{name}.zip", sha256, size_mb, lang, sample_rate)


# Checksums are of the upstream zip archives as pinned independently by several public packagers
# (Arch AUR PKGBUILDs, Yocto recipes, app installers), which all agree. The 1.8 GB model's checksum
# was not found in any such source, so it is left unknown rather than guessed.
CATALOG: dict[str, ModelInfo] = {
    m.name: m
    for m in (
        _entry("vosk-model-small-en-us-0.15",
               "30f26242c4eb449f948e42cb302dd7a686cb29a3423a8367f99ff41780942498", 40),
        _entry("vosk-model-en-us-0.22-lgraph",
               "d9838b4aaa82a75c4a17f5aca300eaca129aaab2a7cbf951bafbb500eb9c4334", 128),
        _entry("vosk-model-en-us-0.22", "", 1800),
    )
}


class ModelError(Exception):
    """A user-facing, one-line failure of a model operation."""


# --- checking a model directory -------------------------------------------------------------------

_REQUIRED = ("am/final.mdl", "conf/mfcc.conf", "conf/model.conf")
# Vosk loads an i-vector extractor only if ivector/final.ie exists; if it does, it needs all of these.
_IVECTOR = ("final.ie", "final.dubm", "final.mat", "global_cmvn.stats", "online_cmvn.conf", "splice.conf")


def _nonempty_file(p: Path) -> bool:
    try:
        return p.is_file() and p.stat().st_size > 0
    except OSError:
        return False


def verify(path: Path, *, load: bool = False) -> list[str]:
    """Problems that would stop Vosk using `path` as a model; an empty list means it looks usable.

    File-level checks mirror what `vosk::Model` reads at start-up. With `load=True` the model is also
    really loaded with `vosk.Model`, in a subprocess: Kaldi may abort the process on a corrupt file,
    and the memory (hundreds of MB) is returned when the child exits.
    """
    path = Path(path)
    if not path.is_dir():
        return ["not a directory"]
    problems = [f"missing {rel}" for rel in _REQUIRED if not _nonempty_file(path / rel)]
    graph = path / "graph"
    if _nonempty_file(graph / "HCLG.fst"):
        # A static graph carries no symbol table of its own; Vosk reads the words from words.txt.
        if not _nonempty_file(graph / "words.txt"):
            problems.append("missing graph/words.txt (needed with graph/HCLG.fst)")
    elif not (_nonempty_file(graph / "HCLr.fst") and _nonempty_file(graph / "Gr.fst")):
        problems.append("missing graph/HCLG.fst (or graph/HCLr.fst + graph/Gr.fst)")
    if (path / "ivector").is_dir():
        problems += [f"missing ivector/{f}" for f in _IVECTOR if not _nonempty_file(path / "ivector" / f)]
    if load and not problems:
        err = _load_in_subprocess(path)
        if err:
            problems.append(err)
    return problems


def is_vosk_model_dir(path: Path) -> bool:
    return not verify(path)


def _load_in_subprocess(path: Path) -> str | None:
    code = ("import sys, vosk\nvosk.SetLogLevel(-1)\nvosk.Model(sys.argv[1])\n")
    try:
        # Kaldi's errors can quote binary model bytes: decode leniently.
        r = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                           errors="replace", timeout=_LOAD_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return f"vosk.Model did not load within {_LOAD_TIMEOUT:.0f} s"
    if r.returncode == 0:
        return None
    lines = [ln.strip() for ln in (r.stderr or "").splitlines() if ln.strip()]
    # Kaldi's own "ERROR (...)" line says what is wrong; Python's last line only says that it failed.
    detail = next((ln for ln in lines if ln.startswith("ERROR")), lines[-1] if lines else "")
    return f"vosk.Model failed to load: {detail[:200] or f'exit status {r.returncode}'}"


# --- listing --------------------------------------------------------------------------------------

def _installed(models_dir: Path) -> list[Path]:
    if not models_dir.is_dir():
        return []
    return sorted(p for p in models_dir.iterdir()
                  if not p.name.startswith(".") and p.is_dir() and is_vosk_model_dir(p))


def list_models(models_dir: Path) -> list[tuple[ModelInfo | None, Path | None]]:
    """Every catalog model (with its install path, or None), then installed models not in the catalog."""
    installed = {p.name: p for p in _installed(Path(models_dir))}
    rows: list[tuple[ModelInfo | None, Path | None]] = [(info, installed.pop(name, None))
                                                         for name, info in CATALOG.items()]
    rows += [(None, p) for p in installed.values()]
    return rows


# --- fetching -------------------------------------------------------------------------------------

def _resolve(name_or_url: str, sha256: str | None, base_url: str | None) -> tuple[str, str, str]:
    """(install name, download URL, expected sha256) for a catalog name or a URL."""
    if sha256 is not None:
        sha256 = sha256.strip().lower()
        if not _HEX64_RE.match(sha256):
            raise ModelError(f"invalid --sha256 {sha256!r}: expected 64 hex digits")
    parsed = urlparse(name_or_url)
    if parsed.scheme in ("http", "https"):
        stem = PurePosixPath(parsed.path).name
        name = stem[:-4] if stem.lower().endswith(".zip") else stem
        if not _NAME_RE.match(name):
            raise ModelError(f"cannot derive a model name from URL {name_or_url!r}")
        info = CATALOG.get(name)
        expected = sha256 or (info.sha256 if info else "")
        if not expected:
            raise ModelError(f"no known SHA-256 for {name_or_url}; pass --sha256 HEX to install it")
        return name, name_or_url, expected
    info = CATALOG.get(name_or_url)
    if info is None:
        known = ", ".join(CATALOG)
        raise ModelError(f"unknown model {name_or_url!r}: use one of {known}, or a URL of a .zip")
    if not (sha256 or info.sha256):
        raise ModelError(f"no known SHA-256 for {info.name}; pass --sha256 HEX (the checksum of "
                         f"{info.name}.zip) to install it")
    base = base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    return info.name, f"{base.rstrip('/')}/{info.name}.zip", sha256 or info.sha256


async def _download(url: str, dest: Path, progress: Progress | None) -> str:
    """Stream `url` into `dest`; returns the hex SHA-256 of what was written."""
    digest = hashlib.sha256()
    # No total timeout (a 1.8 GB model on a slow link is fine); a stalled connection is not.
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as resp:
            if resp.status != 200:
                reason = f" {resp.reason}" if resp.reason else ""
                raise ModelError(f"download failed: HTTP {resp.status}{reason} from {url}")
            total = resp.content_length
            done = 0
            if progress:
                progress(0, total)
            # Local-disk writes of 64 KiB chunks are short next to network waits; `fetch` is used by
            # the CLI, not the serving event loop, so they stay inline.
            with dest.open("wb") as f:
                async for chunk in resp.content.iter_chunked(CHUNK):
                    f.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
            if total is not None and done != total:
                raise ModelError(f"download from {url} ended early ({done} of {total} bytes)")
    except (aiohttp.ClientError, TimeoutError, OSError) as e:
        detail = str(e).splitlines()[0] if str(e) else "timed out" if isinstance(e, TimeoutError) else ""
        raise ModelError(f"download failed from {url}: {e.__class__.__name__}: {detail}".rstrip(": ")) from e
    return digest.hexdigest()


def _safe_members(zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """The archive's members, refusing any that would land outside the unpack directory (zip-slip)."""
    members = zf.infolist()
    for m in members:
        name = m.filename
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if (name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts
                or "\x00" in name):
            raise ModelError(f"unsafe path in archive: {name!r}")
        # A symlink member could point outside; zipfile would write it as a file, but refuse it anyway.
        if stat.S_ISLNK(m.external_attr >> 16):
            raise ModelError(f"archive contains a symbolic link: {name!r}")
    return members


def _unpack(archive: Path, dest: Path) -> Path:
    """Unpack into `dest`; returns the model root inside it (the archive's top folder, or `dest`)."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = _safe_members(zf)
            need = sum(m.file_size for m in members)
            free = shutil.disk_usage(dest).free
            if need > free:
                raise ModelError(f"not enough disk space to unpack: need {need >> 20} MB, "
                                 f"{free >> 20} MB free in {dest.parent}")
            for m in members:
                target = dest.joinpath(*PurePosixPath(m.filename.replace("\\", "/")).parts)
                # Belt and braces on top of the name check above.
                if not target.resolve().is_relative_to(dest.resolve()):
                    raise ModelError(f"unsafe path in archive: {m.filename!r}")
                zf.extract(m, dest)
    except zipfile.BadZipFile as e:
        raise ModelError(f"downloaded file is not a valid zip archive: {e}") from e
    if is_vosk_model_dir(dest):
        return dest
    tops = [p for p in dest.iterdir() if not p.name.startswith("__MACOSX")]
    if len(tops) == 1 and tops[0].is_dir():
        return tops[0]
    return dest


def _install(root: Path, target: Path, replace: bool) -> None:
    """Move the verified model root to `target` with renames only (atomic on one filesystem)."""
    old: Path | None = None
    if target.exists():
        if not replace:
            raise ModelError(f"{target} already exists; remove it first")
        old = target.with_name(f".old-{target.name}-{os.getpid()}")
        target.rename(old)
    try:
        root.rename(target)
    except OSError:
        if old is not None:
            old.rename(target)  # put the previous model back
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _prepare(name: str, models_dir: Path) -> Path:
    """Create `models_dir` and an empty hidden temp file in it for the download."""
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".fetch-{name}-", suffix=".zip", dir=models_dir)
    except OSError as e:
        raise ModelError(f"cannot write to models directory {models_dir}: {e.strerror or e}") from e
    os.close(fd)
    return Path(tmp_name)


def _finish(tmp_zip: Path, url: str, target: Path, replace: bool) -> Path:
    """Unpack a verified archive next to `target`, check it is a model, and move it into place."""
    unpack_dir = Path(tempfile.mkdtemp(prefix=f".unpack-{target.name}-", dir=target.parent))
    try:
        root = _unpack(tmp_zip, unpack_dir)
        tmp_zip.unlink()  # free the disk space before the model is in place
        problems = verify(root)
        if problems:
            raise ModelError(f"{url} is not a Vosk model: {'; '.join(problems)}")
        _install(root, target, replace)
        return target
    except OSError as e:
        raise ModelError(f"cannot install {target.name} into {target.parent}: {e}") from e
    finally:
        # After a successful install this only removes an emptied wrapper folder (or nothing).
        shutil.rmtree(unpack_dir, ignore_errors=True)


def _existing(target: Path, force: bool) -> Path | None:
    if not target.exists() or force:
        return None
    if is_vosk_model_dir(target):
        return target
    raise ModelError(f"{target} exists but is not a valid Vosk model; remove it or use --force")


async def fetch(name_or_url: str, models_dir: Path, *, sha256: str | None = None,
                progress: Progress | None = None, base_url: str | None = None,
                force: bool = False) -> Path:
    """Download, verify and install a model; returns `models_dir/<name>`.

    `name_or_url` is a CATALOG name or an http(s) URL of a model .zip. `sha256` overrides (or, for a
    model with no known checksum, supplies) the expected archive checksum. `base_url` (or env
    CARECOACH_MODELS_BASE_URL) replaces the catalog host, for mirrors and tests. A model that is
    already installed and valid is returned without downloading unless `force` is set.
    """
    name, url, expected = _resolve(name_or_url, sha256, base_url)
    target = Path(models_dir) / name
    if (done := _existing(target, force)) is not None:
        return done
    tmp_zip = _prepare(name, Path(models_dir))
    try:
        actual = await _download(url, tmp_zip, progress)
        if actual != expected:
            raise ModelError(f"SHA-256 mismatch for {url}: expected {expected}, got {actual}; "
                             "nothing installed")
        # Unzipping hundreds of MB is CPU and disk bound: keep it off the event loop.
        return await asyncio.to_thread(_finish, tmp_zip, url, target, force)
    finally:
        _remove(tmp_zip)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
