"""Safe upload handling: type by content, size limits, zip safety, identifiers removed."""

from __future__ import annotations

import gzip
import io
import os
import stat
import time
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from lcid.server.privacy import deidentify
from lcid.server.sessions import SessionStore
from lcid.server.uploads import (
    UploadRejected,
    ZipLimits,
    extract_zip,
    private_dir,
    require_kind,
    save_stream,
    sniff,
    sniff_file,
)


def nifti_bytes(*, version: int = 1, shape: tuple[int, ...] = (4, 4, 3, 2)) -> bytes:
    cls = nib.Nifti1Image if version == 1 else nib.Nifti2Image
    img = cls(np.ones(shape, np.float32), np.eye(4))
    return img.to_bytes()


@pytest.mark.parametrize("version", [1, 2])
def test_nifti_found_by_header_plain_and_gzipped(tmp_path: Path, version: int) -> None:
    raw = nifti_bytes(version=version)
    assert sniff(raw[:544]) == "nifti"
    plain, packed = tmp_path / "a.bin", tmp_path / "b.bin"
    plain.write_bytes(raw)
    packed.write_bytes(gzip.compress(raw))
    assert sniff_file(plain) == "nifti"
    assert sniff_file(packed) == "nifti_gz"
    assert sniff(gzip.compress(raw)[:544]) == "nifti_gz"


def test_big_endian_nifti_is_recognised() -> None:
    head = bytearray(nifti_bytes()[:348])
    head[:4] = (348).to_bytes(4, "big")
    assert sniff(bytes(head)) == "nifti"


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(40), "png"),
        (b"\xff\xd8\xff\xe0" + bytes(40), "jpeg"),
        (b"PK\x03\x04" + bytes(40), "zip"),
        (b"0 1000 1000 1000\n", "text"),
        (b'{"PhaseEncodingDirection": "j-"}', "text"),
        (bytes(400), "unknown"),
        (b"\x1f\x8b" + bytes(40), "unknown"),  # gzip that is no NIfTI
        (b"", "unknown"),
    ],
)
def test_sniff_by_content(head: bytes, kind: str) -> None:
    assert sniff(head) == kind


def test_name_does_not_matter_only_content(tmp_path: Path) -> None:
    fake = tmp_path / "scan.nii.gz"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(UploadRejected) as err:
        require_kind(fake, ("nifti", "nifti_gz"), what="the DWI file")
    assert err.value.status == 415
    assert "PNG" in str(err.value)


def test_save_stream_limits_size_and_is_private(tmp_path: Path) -> None:
    dest = tmp_path / "ok"
    assert save_stream(io.BytesIO(b"x" * 100), dest, max_bytes=100, what="f") == 100
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    with pytest.raises(UploadRejected) as err:
        save_stream(io.BytesIO(b"x" * 101), tmp_path / "big", max_bytes=100, what="f")
    assert err.value.status == 413
    assert not (tmp_path / "big").exists()
    with pytest.raises(UploadRejected) as err:
        save_stream(io.BytesIO(b""), tmp_path / "empty", max_bytes=100, what="f")
    assert err.value.status == 400


def test_private_dir_mode(tmp_path: Path) -> None:
    folder = private_dir(prefix="t-", parent=tmp_path)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def make_zip(path: Path, entries: dict[str, bytes], *, symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return path


def test_zip_extracts_nested_files(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "ok.zip", {"series/IM0001": b"a" * 10, "series/IM0002": b"b" * 10})
    out = tmp_path / "out"
    out.mkdir()
    files = extract_zip(archive, out)
    assert sorted(f.relative_to(out).as_posix() for f in files) == ["series/IM0001", "series/IM0002"]


@pytest.mark.parametrize("name", ["../evil.txt", "a/../../evil.txt", "/etc/evil.txt", "..\\evil.txt", "C:/evil.txt"])
def test_zip_path_traversal_refused(tmp_path: Path, name: str) -> None:
    archive = make_zip(tmp_path / "bad.zip", {"fine.txt": b"ok", name: b"pwned"})
    out = tmp_path / "deep" / "out"
    out.mkdir(parents=True)
    with pytest.raises(UploadRejected) as err:
        extract_zip(archive, out)
    assert err.value.status == 400
    assert not any(p.name == "evil.txt" for p in tmp_path.rglob("*"))


def test_zip_symlink_refused(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "link.zip", {"a": b"1"}, symlink="link")
    (tmp_path / "out").mkdir()
    with pytest.raises(UploadRejected, match="symbolic"):
        extract_zip(archive, tmp_path / "out")


def test_zip_bomb_refused_by_ratio(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "bomb.zip", {"zeros": bytes(50 << 20)})  # 50 MiB of zeros -> ~50 KiB
    assert archive.stat().st_size < 1 << 20
    (tmp_path / "out").mkdir()
    with pytest.raises(UploadRejected) as err:
        extract_zip(archive, tmp_path / "out")
    assert err.value.status == 413
    assert not (tmp_path / "out" / "zeros").exists()


def test_zip_total_size_and_entry_count_limits(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    archive = make_zip(tmp_path / "big.zip", {f"f{i}": rng.bytes(4096) for i in range(10)})
    (tmp_path / "a").mkdir()
    with pytest.raises(UploadRejected, match="limit"):
        extract_zip(archive, tmp_path / "a", limits=ZipLimits(max_total_bytes=20_000))
    (tmp_path / "b").mkdir()
    with pytest.raises(UploadRejected, match="10 files"):
        extract_zip(archive, tmp_path / "b", limits=ZipLimits(max_entries=5))


def test_zip_with_lying_header_is_cut_off(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "liar.zip", {"f": os.urandom(5000)})
    data = bytearray(archive.read_bytes())
    # Shrink the declared uncompressed size in the central directory to 100 bytes.
    central = data.rfind(b"PK\x01\x02")
    data[central + 24 : central + 28] = (100).to_bytes(4, "little")
    archive.write_bytes(bytes(data))
    (tmp_path / "out").mkdir()
    with pytest.raises(UploadRejected):
        extract_zip(archive, tmp_path / "out")


def test_broken_zip_is_400(tmp_path: Path) -> None:
    archive = tmp_path / "broken.zip"
    archive.write_bytes(b"PK\x03\x04" + os.urandom(200))
    (tmp_path / "out").mkdir()
    with pytest.raises(UploadRejected) as err:
        extract_zip(archive, tmp_path / "out")
    assert err.value.status == 400


def test_deidentify_removes_patient_fields_keeps_acquisition() -> None:
    sidecar = {
        "PatientName": "Doe^Jane",
        "PatientID": "123456",
        "PatientBirthDate": "19700101",
        "PatientSex": "F",
        "AcquisitionDateTime": "2024-01-01T10:00:00",
        "StudyInstanceUID": "1.2.3",
        "InstitutionName": "General Hospital",
        "DeviceSerialNumber": "9999",
        "PhaseEncodingDirection": "j-",
        "TotalReadoutTime": 0.05,
        "SliceTiming": [0.0, 0.5],
        "Nested": {"ReferringPhysicianName": "Dr X", "EchoTime": 0.08},
    }
    clean = deidentify(sidecar)
    text = repr(clean)
    for secret in ("Doe", "123456", "19700101", "2024-01-01", "1.2.3", "General Hospital", "9999", "Dr X"):
        assert secret not in text
    assert clean["PhaseEncodingDirection"] == "j-"
    assert clean["SliceTiming"] == [0.0, 0.5]
    assert clean["Nested"] == {"EchoTime": 0.08}


def test_sessions_expire_are_capped_and_cleaned(monkeypatch: pytest.MonkeyPatch) -> None:
    store = SessionStore(ttl_s=10, max_sessions=2)
    try:
        assert stat.S_IMODE(store.root.stat().st_mode) == 0o700
        a, b = store.create(), store.create()
        assert store.get(a.id) is a and a.folder.is_dir()
        c = store.create()  # evicts the oldest
        assert store.get(a.id) is None and not a.folder.exists()
        assert store.get("../../etc") is None
        now = time.monotonic()
        monkeypatch.setattr(time, "monotonic", lambda: now + 11)
        assert store.get(b.id) is None
        assert store.sweep() == 1 and len(store) == 0
        assert not c.folder.exists()
    finally:
        store.close()
    assert not store.root.exists()
