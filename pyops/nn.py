"""Drop-in nn.Modules of every family (each defined in its family module)."""

from pyops.fewbit import MODULE_CLASSES as _FEWBIT
from pyops.gaunt import GauntTensorProduct
from pyops.intops import IntGELU, IntLayerNorm, IntSoftmax, QuantAct, QuantEmbedding, QuantLinear
from pyops.pam import PAMConv2d, PAMLinear
from pyops.wavehax import WavehaxGenerator

__all__ = ["PAMLinear", "PAMConv2d", "IntSoftmax", "IntGELU", "IntLayerNorm", "QuantAct", "QuantLinear",
           "QuantEmbedding", "GauntTensorProduct", "WavehaxGenerator"]

# FewBitGELU, FewBitSiLU, ... one per built-in function of pyops.fewbit
for _cls in _FEWBIT.values():
    globals()[_cls.__name__] = _cls
    __all__.append(_cls.__name__)
