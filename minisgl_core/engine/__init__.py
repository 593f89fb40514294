"""The engine of one process (one tensor-parallel rank): the model, KV memory, attention backends and the
sampler, running one :class:`StepPlan` at a time on the device (CUDA graphs for decode, piecewise ones for
prefill), and the processes of the other tensor-parallel ranks."""

from minisgl_core.engine.engine import Engine
from minisgl_core.engine.plan import StepPlan
from minisgl_core.engine.sampler import SampleResult, SamplingBatch
from minisgl_core.engine.step_output import StepOutput

__all__ = ["Engine", "SampleResult", "SamplingBatch", "StepOutput", "StepPlan"]
