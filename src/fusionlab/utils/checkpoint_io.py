"""Checkpoints written atomically: a temporary file in the same folder, fsync, then rename."""

import errno
import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from fusionlab.utils.errors import DataError


class AtomicCheckpointIO(TorchCheckpointIO):
    """A crash or a full disk mid-save leaves the previous checkpoint intact and no partial file."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DataError(path, "no space left on the device while writing this checkpoint; the "
                                "previous checkpoint is intact (free space, then resume with ckpt_path=last)") from None
            raise
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
