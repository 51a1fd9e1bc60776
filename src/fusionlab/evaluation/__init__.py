"""Evaluation, written once: :class:`~fusionlab.evaluation.hooks.EvaluatedModule` owns the
validation/test hooks of every approach, and each task family has its evaluator (restoration,
style transfer, generation) that turns an approach's named outputs into logged metrics and
per-image records (``eval.json`` / ``metrics.json`` ``per_image``), keyed by a stable image name so
two runs evaluated on the same images can be paired (:mod:`fusionlab.reporting.stats`)."""

from fusionlab.evaluation.base import Evaluator
from fusionlab.evaluation.generation import GenerationEvaluator
from fusionlab.evaluation.hooks import EvaluatedModule
from fusionlab.evaluation.restoration import RestorationEvaluator
from fusionlab.evaluation.specs import MetricSpec
from fusionlab.evaluation.style import StyleEvaluator

# The specs of each task family's evaluator: read only for run records written before the records
# carried their own (``metric_specs``), whose task is then recognised from the metric names.
SPECS_BY_TASK = {cls.task: {s.name: s for s in cls.metrics}
                 for cls in (RestorationEvaluator, StyleEvaluator, GenerationEvaluator)}

__all__ = ["EvaluatedModule", "Evaluator", "GenerationEvaluator", "MetricSpec", "RestorationEvaluator",
           "SPECS_BY_TASK", "StyleEvaluator"]
