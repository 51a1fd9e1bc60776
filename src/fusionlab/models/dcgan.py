"""DCGAN generator (Radford et al. 2016): a latent vector to a ``image_size`` image in [0, 1].

A 4x4 transposed conv from the latent, then stride-2 transposed convs (BatchNorm + ReLU) doubling
the resolution up to ``image_size``; the depth follows from the size. The matching discriminator
is :class:`fusionlab.models.discriminators.DCGANDiscriminator`.
"""

import math

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _sn

from fusionlab.models.blocks import init_normal
from fusionlab.models.discriminators import check_image_size


class DCGANGenerator(nn.Module):
    """:param width: channels of the last hidden layer; layer ``i`` from the end has ``width * 2**i``
    (capped at ``8 * width``). :param spectral_norm: wrap the convs (SN-GAN style generator).
    :param init_std: DCGAN's N(0, std) initialisation (:func:`~fusionlab.models.blocks.init_normal`);
        null keeps PyTorch's default."""

    def __init__(self, latent_dim: int = 64, channels: int = 1, image_size: int = 32, width: int = 64,
                 spectral_norm: bool = False, init_std: float | None = 0.02) -> None:
        super().__init__()
        check_image_size(image_size)
        self.latent_dim, self.channels, self.image_size = latent_dim, channels, image_size
        n_up = int(math.log2(image_size)) - 2  # 4x4 -> image_size
        wrap = _sn if spectral_norm else (lambda m: m)
        c = width * min(2 ** (n_up - 1), 8) if n_up > 0 else width
        layers: list[nn.Module] = [wrap(nn.ConvTranspose2d(latent_dim, c, 4, 1, 0, bias=False)),
                                   nn.BatchNorm2d(c), nn.ReLU()]
        for i in range(n_up - 1, 0, -1):
            c_out = width * min(2 ** (i - 1), 8)
            layers += [wrap(nn.ConvTranspose2d(c, c_out, 4, 2, 1, bias=False)), nn.BatchNorm2d(c_out), nn.ReLU()]
            c = c_out
        layers += [wrap(nn.ConvTranspose2d(c, channels, 4, 2, 1)), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)
        if init_std is not None:
            init_normal(self, init_std)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.reshape(z.shape[0], self.latent_dim, 1, 1))


class SharedTrunkGenerators(nn.Module):
    """K DCGAN generators that share every layer but the first (MGAN, Hoang et al. 2018: each
    generator has its own input layer, the rest is shared). ``forward(z, k)`` runs sample ``i``
    through head ``k[i]``, then every sample through the trunk at once (one BatchNorm batch, as in
    MGAN's code). ``member(j)`` is generator ``j`` on its own (``latent -> image``), for grids.

    :param num: K; the other arguments are :class:`DCGANGenerator`'s (each head gets its own
        random initialisation).
    """

    def __init__(self, num: int, latent_dim: int = 64, channels: int = 1, image_size: int = 32, width: int = 64,
                 spectral_norm: bool = False, init_std: float | None = 0.02) -> None:
        super().__init__()
        gens = [DCGANGenerator(latent_dim, channels, image_size, width, spectral_norm, init_std) for _ in range(num)]
        self.heads = nn.ModuleList([g.net[0] for g in gens])
        self.trunk = nn.Sequential(*list(gens[0].net)[1:])
        self.latent_dim, self.channels, self.image_size, self.num = latent_dim, channels, image_size, num

    def forward(self, z: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        z = z.reshape(z.shape[0], self.latent_dim, 1, 1)
        h = None
        for j, head in enumerate(self.heads):
            rows = (k == j).nonzero().flatten()
            if rows.numel() == 0:
                continue
            out = head(z[rows])
            if h is None:
                h = out.new_empty((z.shape[0], *out.shape[1:]))
            h[rows] = out
        return self.trunk(h)

    def member(self, j: int) -> nn.Module:
        return _Member(self, j)


class _Member(nn.Module):
    """Generator ``j`` of a :class:`SharedTrunkGenerators` as a plain ``latent -> image`` network
    (a view: it holds no parameters of its own)."""

    def __init__(self, shared: SharedTrunkGenerators, j: int) -> None:
        super().__init__()
        self._shared, self.j = [shared], j  # a list: not a submodule (no duplicate parameters)
        self.latent_dim, self.channels, self.image_size = shared.latent_dim, shared.channels, shared.image_size

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self._shared[0](z, torch.full((z.shape[0],), self.j, dtype=torch.long, device=z.device))
