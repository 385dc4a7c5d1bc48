"""The JSON API of ``lcid serve`` with FastAPI's TestClient: good and bad uploads."""

from __future__ import annotations

import gzip
import io
import json
import sys
import types
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from fastapi.testclient import TestClient

from lcid.server.app import ServerConfig, create_app
from tests.conftest import REAL_SERIES, make_scan


@pytest.fixture
def client():
    with TestClient(create_app(ServerConfig(max_upload_mb=4)), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def series_files(tmp_path: Path) -> dict[str, bytes]:
    """A small synthetic series as upload bytes: 16x16x8, 1 b0 + 6 directions."""
    scan = make_scan(shape=(16, 16, 8), n_b0=1, n_dirs=6)
    img = nib.Nifti1Image(scan.data, scan.affine)
    return {
        "dwi": gzip.compress(img.to_bytes()),
        "bval": (" ".join(f"{b:g}" for b in scan.bvals) + "\n").encode(),
        "bvec": "\n".join(" ".join(f"{v:.6f}" for v in row) for row in scan.bvecs.T).encode(),
        "sidecar": json.dumps({"PhaseEncodingDirection": "j-", "PatientName": "Doe^Jane"}).encode(),
    }


def post_check(client: TestClient, files: dict[str, bytes]):
    return client.post("/api/check", files={k: (f"x.{k}", v) for k, v in files.items()})


def assert_error(response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert "\n" not in body["error"]
    for word in words:
        assert word in body["error"].lower()


def test_health_and_openapi(client: TestClient) -> None:
    assert client.get("/api/health").json() == {"status": "ok", "version": __import__("lcid").__version__}
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/health", "/api/check", "/api/ask", "/api/session/{sid}/{name}"} <= set(paths)


def test_page_is_offline_and_locked_down(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "connect-src 'self'" in csp
    static = Path(__file__).resolve().parents[1] / "src" / "lcid" / "server" / "static"
    for path in [static / "index.html", static / "app.js", static / "style.css"]:
        text = path.read_text()
        assert "http://" not in text and "https://" not in text, path.name
        assert "@import" not in text and "fonts." not in text
    assert client.get("/static/vendor/niivue/niivue.umd.js").status_code == 200
    assert client.get("/static/vendor/niivue/LICENSE").status_code == 200


def test_wrong_type_is_415(client: TestClient, series_files) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(2000)
    assert_error(post_check(client, {**series_files, "dwi": png}), 415, "nifti", "png")
    assert_error(post_check(client, {**series_files, "bval": bytes(100)}), 415, "bval")


def test_too_large_is_413(client: TestClient, series_files) -> None:
    huge = series_files["dwi"] + bytes(6 << 20)
    assert_error(post_check(client, {**series_files, "dwi": huge}), 413, "limit")
    assert client.get("/api/health").status_code == 200


def test_too_large_stream_without_length_is_413(client: TestClient) -> None:
    """A chunked body (no Content-Length) is refused once it passes the limit."""

    def body():
        yield b'--x\r\nContent-Disposition: form-data; name="dwi"; filename="a.nii"\r\n\r\n'
        for _ in range(64):  # 64 x 128 KiB = 8 MiB > 4 MiB + slack
            yield bytes(128 << 10)
        yield b"\r\n--x--\r\n"

    response = client.post("/api/check", content=body(), headers={"content-type": "multipart/form-data; boundary=x"})
    assert_error(response, 413, "limit")
    assert client.get("/api/health").status_code == 200


def test_body_limit_stops_reading_early() -> None:
    """At the ASGI level: the app sees no chunk past the limit, the client gets 413."""
    import asyncio

    from lcid.server.body_limit import BodyLimit

    chunks = [{"type": "http.request", "body": bytes(1000), "more_body": True} for _ in range(100)]
    consumed, sent = [], []

    async def receive():
        consumed.append(1)
        return chunks[len(consumed) - 1]

    async def send(message):
        sent.append(message)

    async def reader(scope, receive, send):
        while (await receive())["more_body"]:
            pass

    asyncio.run(BodyLimit(reader, max_bytes=5500)({"type": "http", "headers": []}, receive, send))
    assert len(consumed) == 6
    assert sent[0]["status"] == 413


def test_missing_gradients_is_400(client: TestClient, series_files) -> None:
    files = {"dwi": series_files["dwi"]}
    assert_error(post_check(client, files), 400, "bval")
    assert_error(client.post("/api/check"), 400, "dwi")


def test_truncated_nifti_is_422(client: TestClient, series_files) -> None:
    raw = gzip.decompress(series_files["dwi"])
    truncated = raw[: len(raw) // 2]
    assert_error(post_check(client, {**series_files, "dwi": truncated}), 422, "truncated")


def test_mismatched_bvec_is_422(client: TestClient, series_files) -> None:
    rows = series_files["bvec"].decode().splitlines()
    short = "\n".join(" ".join(r.split()[:-2]) for r in rows).encode()
    assert_error(post_check(client, {**series_files, "bvec": short}), 422, "columns")


def test_broken_sidecar_is_422(client: TestClient, series_files) -> None:
    assert_error(post_check(client, {**series_files, "sidecar": b"{not json"}), 422, "json")


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def test_zip_with_traversal_is_400(client: TestClient) -> None:
    archive = zip_bytes({"IM0001": b"DICM", "../../../tmp/lcid_evil": b"x"})
    assert_error(client.post("/api/check", files={"dwi": ("s.zip", archive)}), 400, "unsafe")
    assert not Path("/tmp/lcid_evil").exists()


def test_zip_bomb_is_413(client: TestClient) -> None:
    archive = zip_bytes({"zeros": bytes(100 << 20)})
    assert len(archive) < 4 << 20
    assert_error(client.post("/api/check", files={"dwi": ("s.zip", archive)}), 413, "zip")


def test_zip_without_diffusion_is_422(client: TestClient) -> None:
    archive = zip_bytes({"notes.txt": b"hello"})
    response = client.post("/api/check", files={"dwi": ("s.zip", archive)})
    assert_error(response, 422)


def test_zip_of_nifti_with_gradients_is_unpacked(client: TestClient, series_files, monkeypatch) -> None:
    """A zip holding a NIfTI series is taken as is (no DICOM conversion)."""
    from lcid.server import analysis

    seen = {}

    def fake_check(series, folder):
        seen["series"] = series
        seen["sidecar"] = json.loads(series.sidecar.read_text())
        raise analysis.InputError("stop here")

    monkeypatch.setattr(analysis, "run_check", fake_check)
    archive = zip_bytes(
        {
            "run/dwi.nii.gz": series_files["dwi"],
            "run/dwi.bval": series_files["bval"],
            "run/dwi.bvec": series_files["bvec"],
            "run/dwi.json": series_files["sidecar"],
        }
    )
    assert_error(client.post("/api/check", files={"dwi": ("s.zip", archive)}), 422, "stop here")
    assert seen["series"].image.name == "volume.nii.gz"
    assert "PatientName" not in seen["sidecar"] and seen["sidecar"]["PhaseEncodingDirection"] == "j-"
    assert not (seen["series"].image.parent / "unzipped").exists()  # the unpacked files are gone
    assert len(client.app.state.sessions) == 0  # the failed session was deleted


def test_dicom_zip_is_converted_without_identifiers(client: TestClient, tmp_path: Path, monkeypatch) -> None:
    """A zip of a DICOM series goes through dcm2niix; the DICOM files are deleted after."""
    from lcid.server import analysis
    from tests.dicom_series import write_dicom_series

    write_dicom_series(tmp_path / "dicom")
    archive = zip_bytes({f"series/{p.name}": p.read_bytes() for p in sorted((tmp_path / "dicom").rglob("*")) if p.is_file()})
    seen = {}

    def fake_check(series, folder):
        seen["bvals"] = series.bval.read_text().split()
        seen["sidecar"] = series.sidecar.read_text()
        seen["files"] = sorted(p.name for p in folder.rglob("*"))
        raise analysis.InputError("stop here")

    monkeypatch.setattr(analysis, "run_check", fake_check)
    assert_error(client.post("/api/check", files={"dwi": ("s.zip", archive)}), 422, "stop here")
    assert len(seen["bvals"]) == 7
    assert "SECRET123" not in seen["sidecar"] and "Doe" not in seen["sidecar"]
    assert seen["files"] == ["volume.bval", "volume.bvec", "volume.json", "volume.nii.gz"]


def test_unknown_session_and_routes_are_404(client: TestClient) -> None:
    assert_error(client.get("/api/session/AAAAAAAAAAAAAAAAAAAAAA/report.html"), 404, "session")
    assert_error(client.get("/api/session/..%2F..%2Fetc/passwd"), 404)
    assert_error(client.get("/api/nothing"), 404)


@pytest.fixture
def fake_vlm(monkeypatch):
    """Stand-in for lcid.vlm.inference.ask that records what the server passes to it."""
    calls = []

    def ask(image, *, question, acq=None, findings=None, model="dwi", history=None):
        calls.append({"image": Path(image), "question": question, "acq": acq, "findings": findings,
                      "model": model, "history": history, "exists": Path(image).is_file()})
        return {"answer": f"echo: {question}", "problems": [{"problem": "motion", "probability": 0.25}]}

    module = types.ModuleType("lcid.vlm.inference")
    module.ask = ask
    module.installed_models = list  # no model installed
    monkeypatch.setitem(sys.modules, "lcid.vlm.inference", module)
    return calls


def png_bytes() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray((np.arange(64 * 64).reshape(64, 64) % 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_ask_passes_image_question_and_history(client: TestClient, fake_vlm) -> None:
    history = json.dumps([{"question": "q1", "answer": "a1"}])
    response = client.post(
        "/api/ask",
        files={"image": ("slice.png", png_bytes())},
        data={"question": "Is there motion?", "acq": "b=1000, 30 directions", "history": history},
    )
    assert response.status_code == 200, response.text
    assert response.json()["answer"] == "echo: Is there motion?"
    call = fake_vlm[0]
    assert call["exists"] and call["image"].suffix == ".png"
    assert call["acq"] == "b=1000, 30 directions" and call["history"] == [("q1", "a1")]
    assert call["model"] == "dwi"  # no model installed: the DWI model is asked for by name
    assert not call["image"].exists()  # the upload is deleted after the request


def test_ask_bad_input(client: TestClient, fake_vlm) -> None:
    nifti = gzip.compress(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)).to_bytes())
    assert_error(client.post("/api/ask", files={"image": ("a.png", nifti)}, data={"question": "hi"}), 415, "png")
    assert_error(client.post("/api/ask", data={"question": "hi"}), 400, "image")
    assert_error(client.post("/api/ask", files={"image": ("a.png", png_bytes())}), 400, "question")
    assert_error(
        client.post("/api/ask", files={"image": ("a.png", png_bytes())}, data={"question": "hi", "history": "[1]"}),
        400,
        "history",
    )
    assert not fake_vlm


def test_models_lists_installed_and_prefers_dwi(client: TestClient, tmp_path: Path, monkeypatch) -> None:
    import lcid.vlm.inference

    vlm_config = '{"vision": "cnn"}'
    for name, config in (("pneumoniamnist", '{"autoencoder": {}}'), ("vqa-rad", vlm_config), ("broken", None)):
        (tmp_path / name).mkdir()
        if config is not None:
            (tmp_path / name / "config.json").write_text(config)
    (tmp_path / "vqa-ensemble").mkdir()
    (tmp_path / "vqa-ensemble" / "ensemble.json").write_text("{}")
    monkeypatch.setattr(lcid.vlm.inference, "MODELS_DIR", tmp_path)
    # the synthesis model is not a chat model; an ensemble folder is
    assert client.get("/api/models").json() == {"models": ["vqa-ensemble", "vqa-rad"], "default": "vqa-rad"}
    (tmp_path / "dwi").mkdir()
    (tmp_path / "dwi" / "config.json").write_text(vlm_config)
    assert client.get("/api/models").json()["default"] == "dwi"
    monkeypatch.setattr(lcid.vlm.inference, "MODELS_DIR", tmp_path / "none")
    assert client.get("/api/models").json() == {"models": [], "default": None}


def test_ask_refuses_model_paths(client: TestClient, fake_vlm) -> None:
    response = client.post(
        "/api/ask", files={"image": ("a.png", png_bytes())}, data={"question": "hi", "model": "../../tmp/x"}
    )
    assert_error(response, 400, "model")
    assert not fake_vlm


def test_server_survives_an_internal_error(client: TestClient, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("/secret/path/Doe_Jane")

    module = types.ModuleType("lcid.vlm.inference")
    module.ask = broken
    monkeypatch.setitem(sys.modules, "lcid.vlm.inference", module)
    response = client.post("/api/ask", files={"image": ("a.png", png_bytes())}, data={"question": "hi"})
    assert_error(response, 500, "internal error")
    assert "Doe" not in response.text and "secret" not in response.text
    assert client.get("/api/health").status_code == 200


@pytest.mark.integration
@pytest.mark.slow
def test_real_siemens_series_check_session_and_ask(tmp_path: Path, fake_vlm) -> None:
    image = REAL_SERIES["siemens_ap"]
    stem = image.name[: -len(".nii.gz")]
    files = {
        "dwi": ("a.nii.gz", image.read_bytes()),
        "bval": ("a.bval", image.with_name(stem + ".bval").read_bytes()),
        "bvec": ("a.bvec", image.with_name(stem + ".bvec").read_bytes()),
        "sidecar": ("a.json", image.with_name(stem + ".json").read_bytes()),
    }
    app = create_app()
    with TestClient(app) as client:
        response = client.post("/api/check", files=files)
        assert response.status_code == 200, response.text
        doc = response.json()
        assert doc["input"]["shape"] == [72, 72, 39, 21]
        assert doc["input"]["path"] == "volume.nii.gz"
        assert {f["problem"] for f in doc["findings"]} == set(__import__("lcid").dwi.vocabulary.PROBLEM_IDS)
        session = doc["session"]
        assert session["bvals"][:2] == [0.0, 2500.0]
        saved = client.get(session["findings_url"]).json()
        assert saved == {k: v for k, v in doc.items() if k != "session"}
        report = client.get(session["report_url"])
        assert report.status_code == 200 and "<html" in report.text.lower()
        assert "default-src 'none'" in report.headers["content-security-policy"]
        volume = client.get(session["volume_url"])
        assert nib.Nifti1Image.from_bytes(gzip.decompress(volume.content)).shape == (72, 72, 39, 21)
        assert client.get(session["preview_url"]).content.startswith(b"\x89PNG")
        for text in (response.text, report.text):
            assert "PatientName" not in text and "/tmp/" not in text
        answer = client.post("/api/ask", data={"question": "Any motion?", "session": session["id"]})
        assert answer.status_code == 200, answer.text
        call = fake_vlm[-1]
        assert call["image"].name == "preview.png" and call["findings"]["findings"] == doc["findings"]
        assert "72x72x39" in call["acq"]
        folder = app.state.sessions.root
        assert client.delete(f"/api/session/{session['id']}").json() == {"deleted": True}
        assert_error(client.get(session["report_url"]), 404)
    assert not folder.exists()  # every session is removed on shutdown
