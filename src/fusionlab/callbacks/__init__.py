"""Lightning callbacks: sample grids, throughput, the run config inside checkpoints."""

from fusionlab.callbacks.checkpoint_config import ConfigInCheckpoint
from fusionlab.callbacks.fid import FIDCallback
from fusionlab.callbacks.samples import GeneratorGrid, ImageWriter, SampleGrid
from fusionlab.callbacks.schedule import ValidationSchedule
from fusionlab.callbacks.throughput import Throughput

__all__ = ["ConfigInCheckpoint", "FIDCallback", "GeneratorGrid", "ImageWriter", "SampleGrid", "Throughput", "ValidationSchedule"]
