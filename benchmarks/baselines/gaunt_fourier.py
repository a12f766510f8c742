"""The official Gaunt Tensor Product pipeline (Luo et al. 2024) re-stated in plain PyTorch, for
benchmarking only: dense complex sh2f einsum [D, 2L-1, 2L-1], 2D FFTs of the zero-padded grids
(linear convolution), dense complex f2sh einsum, real part.  Written from the paper's description
with our exact float64-generated tables (pyops.reference.gaunt) cast to the working precision;
the official precomputed tables drift above l ~ 10 and are not used."""

import torch
from torch import nn

from pyops.reference import gaunt as ref


class GauntFourierOfficial(nn.Module):
    def __init__(self, lmax1: int, lmax2: int, lmax_out: int, dtype=torch.float32):
        super().__init__()
        cdtype = torch.complex64 if dtype == torch.float32 else torch.complex128
        U = lmax1 + lmax2
        self.n = 2 * U + 1
        self.register_buffer("sh2f1", torch.from_numpy(ref.sh2f_table(lmax1)).to(cdtype))
        self.register_buffer("sh2f2", torch.from_numpy(ref.sh2f_table(lmax2)).to(cdtype))
        self.register_buffer("f2sh", torch.from_numpy(ref.f2sh_table(lmax_out, U, U)).to(cdtype))

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        f1 = torch.einsum("...i,iuv->...uv", x1.to(self.sh2f1.dtype), self.sh2f1)
        f2 = torch.einsum("...i,iuv->...uv", x2.to(self.sh2f2.dtype), self.sh2f2)
        s = (self.n, self.n)
        prod = torch.fft.ifft2(torch.fft.fft2(f1, s=s) * torch.fft.fft2(f2, s=s))
        return torch.einsum("...uv,iuv->...i", prod, self.f2sh).real
