"""Checkpoints written atomically (:func:`fusionlab.utils.io.atomic_write`), with one-line errors."""

import errno
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from fusionlab.utils.errors import DataError
from fusionlab.utils.io import atomic_write


class _RecordingWriter:
    """A file object for ``torch.save`` that keeps the ``OSError`` of a failed write: torch's zip
    writer turns it into ``RuntimeError: ... unexpected pos``, which says nothing about a full disk."""

    def __init__(self, f) -> None:
        self.f, self.error = f, None

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.f.flush()


class AtomicCheckpointIO(TorchCheckpointIO):
    """A crash or a full disk mid-save leaves the previous checkpoint intact and no partial file."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        path = Path(path)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                writer = _RecordingWriter(f)
                try:
                    torch.save(checkpoint, writer)
                except RuntimeError:  # torch's zip writer reports a failed write as "unexpected pos"
                    if writer.error is not None:
                        raise writer.error from None
                    raise

        try:
            atomic_write(path, write)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise DataError(path, "no space left on the device (or over the file-size limit) while writing "
                                "this checkpoint; the previous checkpoint is intact (free space, then resume with "
                                "ckpt_path=last)") from None
            if exc.errno in (errno.EROFS, errno.EACCES):
                raise DataError(path, f"cannot write this checkpoint ({exc.strerror})") from None
            raise
