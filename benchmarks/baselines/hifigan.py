"""HiFi-GAN V1 generator (Kong et al. 2020) from its published architecture, for
benchmarking only: upsample rates 8, 8, 2, 2 with kernels 16, 16, 4, 4 from 512
channels; multi-receptive-field fusion of ResBlock1s with kernels 3, 7, 11 and
dilations (1, 3, 5); weight norm folded away (random weights, inference cost only)."""

import torch
import torch.nn.functional as F
from torch import nn

LRELU = 0.1


class ResBlock1(nn.Module):
    def __init__(self, channels: int, kernel: int, dilations=(1, 3, 5)):
        super().__init__()
        self.convs1 = nn.ModuleList(nn.Conv1d(channels, channels, kernel, dilation=d, padding=d * (kernel - 1) // 2)
                                    for d in dilations)
        self.convs2 = nn.ModuleList(nn.Conv1d(channels, channels, kernel, padding=(kernel - 1) // 2)
                                    for _ in dilations)

    def forward(self, x):
        for c1, c2 in zip(self.convs1, self.convs2):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU)), LRELU))
        return x


class HiFiGANV1(nn.Module):
    def __init__(self, in_channels: int = 80, channels: int = 512, rates=(8, 8, 2, 2), kernels=(16, 16, 4, 4),
                 res_kernels=(3, 7, 11)):
        super().__init__()
        self.hop_length = 1
        for r in rates:
            self.hop_length *= r
        self.conv_pre = nn.Conv1d(in_channels, channels, 7, padding=3)
        self.ups, self.resblocks = nn.ModuleList(), nn.ModuleList()
        for i, (r, k) in enumerate(zip(rates, kernels)):
            cin, cout = channels // 2 ** i, channels // 2 ** (i + 1)
            self.ups.append(nn.ConvTranspose1d(cin, cout, k, r, padding=(k - r) // 2))
            self.resblocks.append(nn.ModuleList(ResBlock1(cout, rk) for rk in res_kernels))
        self.conv_post = nn.Conv1d(channels // 2 ** len(rates), 1, 7, padding=3)

    def forward(self, mel):
        x = self.conv_pre(mel)
        for up, blocks in zip(self.ups, self.resblocks):
            x = up(F.leaky_relu(x, LRELU))
            x = sum(b(x) for b in blocks) / len(blocks)
        return torch.tanh(self.conv_post(F.leaky_relu(x)))
