"""Drop-in nn.Modules of every family (each defined in its family module)."""

from pyops.intops import IntGELU, IntLayerNorm, IntSoftmax, QuantAct
from pyops.pam import PAMConv2d, PAMLinear

__all__ = ["PAMLinear", "PAMConv2d", "IntSoftmax", "IntGELU", "IntLayerNorm", "QuantAct"]
