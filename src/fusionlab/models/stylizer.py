"""Style-transfer generator: encoder -> style injection -> decoder, output in [0, 1].

One encoder reads both images. The style image becomes a *style representation* ``r`` (a
``(B, D)`` vector) that the injection block applies to the content features:

- ``adain``: ``r`` is the channel-wise mean and std of the style features; the content features
  are re-normalised to them (AdaIN, Huang & Belongie 2017);
- ``concat``: ``r`` is a learned code (an MLP of those statistics), broadcast and concatenated to
  the content features, then mixed by a 1x1 conv;
- ``spade``: ``r`` is that code; a small conv net reads it with the normalised content features and
  predicts a per-pixel scale and shift (SPADE-like modulation, Park et al. 2019).

Because every injection accepts ``r`` as ``(B, D)`` or as a map ``(B, D, h, w)``, fusing styles is
done in representation space: style mixing is a weighted sum of representations, and region fusion
a per-pixel blend of them through smoothed masks (:meth:`StyleTransferGenerator.fuse_styles`).
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fusionlab.functional import mean_std
from fusionlab.models.blocks import ResBlock

INJECTIONS = ("adain", "concat", "spade")


def adain(content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor) -> torch.Tensor:
    """Content features with their per-channel mean/std replaced by the style's (maps broadcast)."""
    c_mean, c_std = mean_std(content)
    return style_std * (content - c_mean) / c_std + style_mean


def _as_map(r: torch.Tensor) -> torch.Tensor:
    return r[..., None, None] if r.dim() == 2 else r


class AdaINInjection(nn.Module):
    def __init__(self, channels: int, code_dim: int) -> None:
        super().__init__()
        self.channels = channels
        self.repr_dim = 2 * channels

    def encode(self, style_feat: torch.Tensor) -> torch.Tensor:
        mean, std = mean_std(style_feat)
        return torch.cat([mean, std], dim=1).flatten(1)

    def forward(self, feat: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        r = _as_map(r)
        return adain(feat, r[:, : self.channels], r[:, self.channels :])


class _CodeInjection(nn.Module):
    def __init__(self, channels: int, code_dim: int) -> None:
        super().__init__()
        self.repr_dim = code_dim
        self.mlp = nn.Sequential(nn.Linear(2 * channels, code_dim), nn.ReLU(), nn.Linear(code_dim, code_dim))

    def encode(self, style_feat: torch.Tensor) -> torch.Tensor:
        mean, std = mean_std(style_feat)
        return self.mlp(torch.cat([mean, std], dim=1).flatten(1))


class ConcatInjection(_CodeInjection):
    def __init__(self, channels: int, code_dim: int) -> None:
        super().__init__(channels, code_dim)
        self.mix = nn.Conv2d(channels + code_dim, channels, 1)

    def forward(self, feat: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        r = _as_map(r).expand(-1, -1, *feat.shape[-2:])
        return self.mix(torch.cat([feat, r.to(feat.dtype)], dim=1))


class SPADEInjection(_CodeInjection):
    def __init__(self, channels: int, code_dim: int) -> None:
        super().__init__(channels, code_dim)
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        hidden = max(channels, code_dim)
        self.shared = nn.Sequential(nn.Conv2d(channels + code_dim, hidden, 3, padding=1), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, feat: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        normed = self.norm(feat)
        r = _as_map(r).expand(-1, -1, *feat.shape[-2:])
        h = self.shared(torch.cat([normed, r.to(feat.dtype)], dim=1))
        return normed * (1 + self.gamma(h)) + self.beta(h)


def coral(source: torch.Tensor, target: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``source`` images with each one's colour mean and covariance matched to ``target``'s
    (CORAL, Sun et al. 2016; pytorch-AdaIN's ``coral``), clamped to [0, 1]. Gray images pass."""
    if source.shape[1] == 1:
        return source
    b, c = source.shape[:2]
    s, t = source.float().flatten(2), target.float().flatten(2)
    ms, mt = s.mean(2, keepdim=True), t.mean(2, keepdim=True)
    eye = torch.eye(c, device=s.device)

    def cov(x, m):
        d = x - m
        return d @ d.transpose(1, 2) / max(1, x.shape[2] - 1) + eps * eye

    ls, lt = torch.linalg.cholesky(cov(s, ms)), torch.linalg.cholesky(cov(t, mt))
    out = lt @ torch.linalg.solve_triangular(ls, s - ms, upper=False) + mt
    return out.view_as(source).clamp(0.0, 1.0).to(source.dtype)


def region_weights(masks: torch.Tensor, size: tuple[int, int], blur: float) -> torch.Tensor:
    """Per-region weights at feature resolution: area-downsampled, Gaussian-blurred (``blur`` feature
    pixels; 0 = hard edges) and normalised to sum to 1 at every pixel. ``masks``: ``(B, K, H, W)``."""
    w = F.interpolate(masks.float(), size=size, mode="area")
    if blur > 0:
        radius = max(1, int(3 * blur))
        x = torch.arange(-radius, radius + 1, dtype=w.dtype, device=w.device)
        k = torch.exp(-0.5 * (x / blur) ** 2)
        k = (k / k.sum()).to(w.dtype)
        c = w.shape[1]
        pad_mode = "reflect" if min(size) > radius else "replicate"
        w = F.conv2d(F.pad(w, (radius, radius, 0, 0), mode=pad_mode), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
        w = F.conv2d(F.pad(w, (0, 0, radius, radius), mode=pad_mode), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return w / w.sum(dim=1, keepdim=True).clamp_min(1e-8)


class StyleTransferGenerator(nn.Module):
    """``G(content, style) -> image`` in [0, 1].

    :param width: channels after the stem; doubled by each of the ``n_down`` stride-2 convs.
    :param n_res: residual blocks after the injection.
    :param injection: ``adain``, ``concat`` or ``spade``.
    :param code_dim: style code size for ``concat`` / ``spade``.
    """

    def __init__(self, channels: int = 3, width: int = 32, n_down: int = 2, n_res: int = 4,
                 injection: str = "adain", code_dim: int = 128) -> None:
        super().__init__()
        if injection not in INJECTIONS:
            raise ValueError(f"unknown style injection {injection!r}: expected one of {INJECTIONS}")
        self.channels, self.n_down = channels, n_down
        enc = [nn.ReflectionPad2d(3), nn.Conv2d(channels, width, 7), nn.InstanceNorm2d(width, affine=True), nn.ReLU()]
        c = width
        for _ in range(n_down):
            enc += [nn.Conv2d(c, 2 * c, 3, 2, 1), nn.InstanceNorm2d(2 * c, affine=True), nn.ReLU()]
            c *= 2
        self.encoder = nn.Sequential(*enc)
        self.injection = {"adain": AdaINInjection, "concat": ConcatInjection, "spade": SPADEInjection}[injection](
            c, code_dim)
        res = []
        for _ in range(n_res):
            res.append(ResBlock(c))
        self.res = nn.Sequential(*res)
        dec: list[nn.Module] = []
        for _ in range(n_down):
            dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c // 2, 3, padding=1), nn.ReLU()]
            c //= 2
        dec += [nn.ReflectionPad2d(3), nn.Conv2d(c, channels, 7)]
        self.decoder = nn.Sequential(*dec)

    @property
    def stride(self) -> int:
        return 2 ** self.n_down

    def encode_style(self, style: torch.Tensor) -> torch.Tensor:
        """The style representation ``(B, D)`` of style images."""
        return self.injection.encode(self.encoder(style))

    def decode(self, content: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """Content images rendered with representation ``r`` (``(B, D)`` or ``(B, D, h, w)``)."""
        feat = self.injection(self.encoder(content), r)
        return torch.sigmoid(self.decoder(self.res(feat)))

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.decode(content, self.encode_style(style))

    def fuse_styles(self, content: torch.Tensor, styles: Sequence[torch.Tensor],
                    weights: Sequence[float] | None = None, masks: torch.Tensor | None = None, blur: float = 2.0,
                    alpha: float = 1.0, preserve_color: bool = False) -> torch.Tensor:
        """Fuse several styles into ``content`` (``(B, C, H, W)``).

        :param styles: style images, each ``(1 or B, C, h, w)`` (sizes may differ).
        :param weights: style mixing: one weight per style (normalised to sum to 1).
        :param masks: region fusion: ``(B or 1, K, H, W)`` soft or hard masks, region ``k`` gets
            ``styles[k]``; boundaries are smoothed at feature resolution by ``blur``.
        :param alpha: content-style trade-off (pytorch-AdaIN's): the representation is
            ``alpha * style + (1 - alpha) * the content's own``; 0 renders the content with its own
            statistics (the content, as far as the generator reconstructs it), 1 the full style.
        :param preserve_color: match each style image's colour mean and covariance to the content's
            first (CORAL, as pytorch-AdaIN's ``preserve_color``), so only texture is transferred.
        """
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if preserve_color:
            styles = [coral(s.expand(content.shape[0], -1, -1, -1), content) for s in styles]
        reps = [self.encode_style(s).expand(content.shape[0], -1) for s in styles]
        if alpha < 1.0:
            own = self.encode_style(content)
            reps = [float(alpha) * r + (1.0 - float(alpha)) * own for r in reps]
        if masks is not None:
            if masks.shape[1] != len(reps):
                raise ValueError(f"{masks.shape[1]} mask regions but {len(reps)} styles")
            feat = self.encoder(content)
            w = region_weights(masks.to(content.device), feat.shape[-2:], blur).expand(content.shape[0], -1, -1, -1)
            r = sum(w[:, k : k + 1] * reps[k][..., None, None] for k in range(len(reps)))
            return torch.sigmoid(self.decoder(self.res(self.injection(feat, r))))
        if weights is None:
            weights = [1.0] * len(reps)
        if len(weights) != len(reps):
            raise ValueError(f"{len(weights)} weights for {len(reps)} styles")
        total = float(sum(weights))
        if total <= 0 or min(weights) < 0:
            raise ValueError(f"style weights must be >= 0 with a positive sum, got {list(weights)}")
        r = sum((float(wk) / total) * rk for wk, rk in zip(weights, reps))
        return self.decode(content, r)
