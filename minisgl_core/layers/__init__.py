"""Public building blocks for model plugins. Every layer is tensor-parallel aware: it shards its own
weights at load time (through each parameter's ``weight_loader``) and communicates when it must."""

from minisgl_core.layers.activation import SiluAndMul
from minisgl_core.layers.attention import AttentionLayer
from minisgl_core.layers.embedding import ParallelLMHead, VocabParallelEmbedding
from minisgl_core.layers.linear import (
    ColumnParallelLinear,
    MergedColumnParallelLinear,
    QKVParallelLinear,
    RowParallelLinear,
)
from minisgl_core.layers.norm import RMSNorm
from minisgl_core.layers.rotary import RotaryEmbedding, rope_inv_freq

__all__ = [
    "AttentionLayer",
    "ColumnParallelLinear",
    "MergedColumnParallelLinear",
    "ParallelLMHead",
    "QKVParallelLinear",
    "RMSNorm",
    "RotaryEmbedding",
    "RowParallelLinear",
    "SiluAndMul",
    "VocabParallelEmbedding",
    "rope_inv_freq",
]
