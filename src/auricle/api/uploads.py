"""Uploaded audio goes to a spool file on disk; the size limit is enforced while the body streams in
(see ``middleware.UploadLimitMiddleware``), so no upload is ever held whole in memory."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from auricle import metrics
from auricle.errors import AudioDecodeError, InvalidRequestError

__all__ = ["no_filename_message", "save_upload"]

_CHUNK = 1024 * 1024


def no_filename_message(field: str = "file", *, oversized: bool = False) -> str:
    """What to tell a client whose audio part has no filename: multipart parsers (Starlette's, like others) read
    such a part as a text field, limited to 1 MB, so it never reaches us as a file. ``oversized``: the parser
    refused a part over that limit, and which part it was is not known."""
    part = "a form part over 1 MB" if oversized else f"the '{field}' part"
    return (
        f"{part} has no filename, so it was read as a text field (at most 1 MB), not as a file: "
        f"send the audio as a file part with a filename, e.g. curl -F '{field}=@audio.wav'"
    )


def _spool_path(spool_dir: Path, filename: str | None) -> Path:
    spool_dir.mkdir(parents=True, exist_ok=True)
    suffix = Path(filename or "").suffix[:12]
    if not suffix.replace(".", "").isalnum():
        suffix = ""
    return spool_dir / f"{uuid.uuid4().hex}{suffix}"


async def save_upload(upload: UploadFile | None, spool_dir: Path, *, field: str = "file") -> Path:
    """Copy an uploaded file to a new spool file and return its path (the caller owns and deletes it).

    Raises:
        InvalidRequestError: no file was sent in ``field``.
        AudioDecodeError: the file is empty.
    """
    if upload is None:
        raise InvalidRequestError(f"no audio file was sent: upload it as multipart field '{field}'", param=field)
    path = _spool_path(spool_dir, upload.filename)

    def copy() -> int:
        upload.file.seek(0)
        with open(path, "wb") as out:
            shutil.copyfileobj(upload.file, out, _CHUNK)
            return out.tell()

    size = await run_in_threadpool(copy)
    metrics.UPLOAD_BYTES.observe(size)
    if size == 0:
        path.unlink(missing_ok=True)
        raise AudioDecodeError("the uploaded file is empty")
    return path
