"""Safe handling of uploaded files: type by content, size limits, zip extraction.

Everything here judges a file by its bytes, never by the name the browser sent: the
server stores uploads under fixed names of its own (``dwi.nii.gz``, ``dwi.bval`` ...),
so a client-chosen name can neither escape the session folder nor reach a log.
"""

from __future__ import annotations

import gzip
import os
import shutil
import stat
import struct
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Literal

from lcid.errors import InputError

FileKind = Literal["nifti", "nifti_gz", "png", "jpeg", "zip", "text", "unknown"]

#: Bytes read to decide a file's type (a NIfTI-2 header is 540 bytes).
SNIFF_BYTES = 544
#: Copy buffer, bytes.
CHUNK = 1 << 20
#: Limit for the small text companions (bval, bvec, JSON sidecar), bytes.
MAX_TEXT_BYTES = 1 << 20


class UploadRejected(InputError):
    """An upload refused before any analysis; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ZipLimits:
    """Limits that stop zip bombs.

    Attributes
    ----------
    max_entries
        Most files in the archive (a DICOM series of 100 volumes x 70 slices is 7,000).
    max_total_bytes
        Most bytes after decompression, summed over all entries.
    max_ratio
        Highest compression ratio accepted for an entry larger than 1 MiB; DICOM images
        compress about 2-10x, zip bombs 1,000x and more.
    """

    max_entries: int = 20_000
    max_total_bytes: int = 4 << 30
    max_ratio: float = 200.0


def private_dir(*, prefix: str, parent: str | Path | None = None) -> Path:
    """Create a folder readable only by this user (mode 0700, as :func:`tempfile.mkdtemp` makes)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    os.chmod(path, stat.S_IRWXU)
    return path


def sniff(head: bytes) -> FileKind:
    """Type of a file from its first bytes (at least :data:`SNIFF_BYTES` when available).

    NIfTI is recognised by ``sizeof_hdr`` (348 for NIfTI-1, 540 for NIfTI-2, either byte
    order) together with its magic string; gzip is opened to look at the header inside.

    Examples
    --------
    >>> sniff(b"\\x89PNG\\r\\n\\x1a\\n" + bytes(8))
    'png'
    >>> sniff(b"0 1000 1000\\n")
    'text'
    """
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if _is_nifti_header(head):
        return "nifti"
    if head.startswith(b"\x1f\x8b"):
        return "nifti_gz" if _is_nifti_header(_gunzip_head(head)) else "unknown"
    if head and b"\x00" not in head:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:  # a multi-byte character cut at the end is fine
            if exc.start < len(head) - 4:
                return "unknown"
        return "text"
    return "unknown"


def sniff_file(path: Path) -> FileKind:
    """:func:`sniff` on the start of a file; gzip streams are decompressed just enough."""
    with open(path, "rb") as handle:
        head = handle.read(SNIFF_BYTES)
    if head.startswith(b"\x1f\x8b"):
        try:
            with gzip.open(path, "rb") as handle:
                inner = handle.read(SNIFF_BYTES)
        except (OSError, EOFError):
            return "unknown"
        return "nifti_gz" if _is_nifti_header(inner) else "unknown"
    return sniff(head)


def _gunzip_head(head: bytes) -> bytes:
    """The first decompressed bytes of a (possibly truncated) gzip stream."""
    import zlib

    try:
        return zlib.decompressobj(wbits=31).decompress(head, SNIFF_BYTES)
    except zlib.error:
        return b""


def _is_nifti_header(head: bytes) -> bool:
    if len(head) < 348:
        return False
    for order in ("<", ">"):
        (size,) = struct.unpack(f"{order}i", head[:4])
        if size == 348 and head[344:348] in (b"n+1\x00", b"ni1\x00"):
            return True
        if size == 540 and len(head) >= 12 and head[4:8] in (b"n+2\x00", b"ni2\x00"):
            return True
    return False


def save_stream(source: BinaryIO, dest: Path, *, max_bytes: int, what: str) -> int:
    """Copy an upload to ``dest`` (created 0600), refusing more than ``max_bytes``.

    Returns
    -------
    int
        Bytes written.

    Raises
    ------
    UploadRejected
        413 when the stream is larger than ``max_bytes``, 400 when it is empty.
    """
    written = 0
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        while chunk := source.read(CHUNK):
            written += len(chunk)
            if written > max_bytes:
                out.close()
                dest.unlink(missing_ok=True)
                raise UploadRejected(
                    f"{what} is larger than the limit of {max_bytes / 2**20:.0f} MiB", status=413
                )
            out.write(chunk)
    if written == 0:
        dest.unlink(missing_ok=True)
        raise UploadRejected(f"{what} is empty", status=400)
    return written


def require_kind(path: Path, allowed: tuple[FileKind, ...], *, what: str) -> FileKind:
    """The kind of ``path``; 415 when it is not one of ``allowed``."""
    kind = sniff_file(path)
    if kind not in allowed:
        names = {
            "nifti": "NIfTI",
            "nifti_gz": "gzipped NIfTI",
            "png": "PNG",
            "jpeg": "JPEG",
            "zip": "zip",
            "text": "text",
        }
        expected = " or ".join(dict.fromkeys(names[k] for k in allowed))
        found = names.get(kind, "an unrecognised format")
        raise UploadRejected(f"{what} must be {expected}, but its content is {found}", status=415)
    return kind


def safe_member_path(name: str) -> PurePosixPath:
    """The relative path of a zip entry, refusing absolute paths and ``..`` components.

    Raises
    ------
    UploadRejected
        400 for an entry that would land outside the extraction folder.
    """
    normalised = name.replace("\\", "/")
    path = PurePosixPath(normalised)
    if (
        not normalised
        or normalised.startswith("/")
        or (len(normalised) > 1 and normalised[1] == ":")
        or any(part == ".." for part in path.parts)
        or "\x00" in normalised
    ):
        raise UploadRejected("zip entry with an unsafe path (absolute or containing '..') refused", status=400)
    return path


def extract_zip(archive: Path, dest: Path, *, limits: ZipLimits = ZipLimits()) -> list[Path]:
    """Extract ``archive`` into ``dest`` safely and return the files written.

    Refused (nothing is kept): entries with absolute or ``..`` paths, symbolic links,
    encrypted entries, more than ``max_entries`` files, a declared or actual total above
    ``max_total_bytes``, and entries compressed more than ``max_ratio`` times. Sizes are
    counted while decompressing, so a header that lies about them does not help.

    Raises
    ------
    UploadRejected
        400 for unsafe or broken archives, 413 for archives too large once unpacked.
    """
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UploadRejected(f"the zip file cannot be read ({exc.__class__.__name__})", status=400) from exc
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if len(infos) > limits.max_entries:
            raise UploadRejected(f"the zip has {len(infos)} files, more than the limit of {limits.max_entries}", status=413)
        declared = sum(i.file_size for i in infos)
        if declared > limits.max_total_bytes:
            raise UploadRejected(_too_big(limits), status=413)
        for info in infos:
            safe_member_path(info.filename)
            if info.flag_bits & 0x1:
                raise UploadRejected("encrypted zip entries are not supported", status=400)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise UploadRejected("zip entries that are symbolic links are refused", status=400)
            if info.file_size > CHUNK and info.file_size > limits.max_ratio * max(info.compress_size, 1):
                raise UploadRejected("the zip looks like a zip bomb (compression ratio too high)", status=413)
        written: list[Path] = []
        total = 0
        try:
            for info in infos:
                target = dest.joinpath(*safe_member_path(info.filename).parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                entry_total = 0
                with zf.open(info) as source, open(target, "xb") as out:
                    while chunk := source.read(CHUNK):
                        entry_total += len(chunk)
                        total += len(chunk)
                        if entry_total > info.file_size or total > limits.max_total_bytes:
                            raise UploadRejected(_too_big(limits), status=413)
                        out.write(chunk)
                written.append(target)
        except UploadRejected:
            shutil.rmtree(dest, ignore_errors=True)
            raise
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
            shutil.rmtree(dest, ignore_errors=True)
            raise UploadRejected(f"the zip file is damaged ({exc.__class__.__name__})", status=400) from exc
    return written


def _too_big(limits: ZipLimits) -> str:
    return f"the zip unpacks to more than the limit of {limits.max_total_bytes / 2**30:.1f} GiB"
