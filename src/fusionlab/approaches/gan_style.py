"""GAN style-transfer hybrid (``approach=gan_style``): a generator fuses a content image with a style
image, a PatchGAN discriminator judges whether the result belongs to the style domain.

Generator terms (weights in ``loss_weights``): ``adv`` (GANLoss), ``content`` (feature distance to
the content), ``style`` (mean/std or Gram distance to the style), ``identity`` (``G(s, s) ~ s``,
L1), ``tv``; discriminator terms: ``adv`` on real style crops and detached outputs passed through
D together, optional ``r1``. The feature space of the content/style terms (``features``) is
``vgg19`` (a local torchvision VGG-19 file, ``vgg_weights``), ``random_multiscale`` (fixed random
filter banks of several sizes, :mod:`fusionlab.models.random_features`, seeded by
``random_features.seed``: no weights to download, and a space that does not move during training)
or ``discriminator``: the image itself followed by D's block activations, computed with D frozen (D
is toggled off during the G step).

Validation/test log ``content_ssim`` (gray SSIM between output and content), ``style_distance``
(in the configured feature space; in ``discriminator`` space it moves with D, so compare it within
a run, or use ``vgg19`` to compare runs) and, through the FID callback, FID/KID of the outputs
against the style set. The EMA generator (``ema_decay``) is the one evaluated and exported.
"""

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fusionlab.approaches.adversarial import AdversarialModule
from fusionlab.functional import pad_to_multiple
from fusionlab.losses.adversarial import GANLoss, r1_penalty, total_variation
from fusionlab.losses.style import content_loss, style_distance
from fusionlab.evaluation import StyleEvaluator
from fusionlab.utils.errors import ConfigError

FEATURE_SPACES = ("vgg19", "discriminator", "random_multiscale")


class GanStyleTransfer(AdversarialModule):
    """:param features: ``vgg19``, ``random_multiscale`` or ``discriminator`` (see the module docstring).
    :param vgg_weights: torchvision VGG-19 state dict file (``features=vgg19``).
    :param random_features: ``kernel_sizes``, ``width``, ``seed`` of ``features=random_multiscale``.
    :param vgg_layers: VGG layers of the feature space, shallow to deep.
    :param style_kind: ``mean_std`` or ``gram``.
    :param content_layers: indices into the feature list for the content term (-1: deepest).
    """

    LOSS_TERMS = ("adv", "content", "style", "identity", "tv", "r1")

    label = "gan_style"

    def components(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        gan_loss: GANLoss,
        optimizer_g: Callable,
        optimizer_d: Callable,
        scheduler_g: Callable | None = None,
        scheduler_d: Callable | None = None,
        loss_weights: dict[str, float] | None = None,
        n_critic: int = 1,
        grad_clip: float | None = None,
        ema_decay: float | None = None,
        features: str = "discriminator",
        vgg_weights: str | None = None,
        vgg_layers: Sequence[str] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1"),
        style_kind: str = "mean_std",
        content_layers: Sequence[int] = (-1,),
        random_features: dict | None = None,
    ) -> None:
        super().__init__(generator, discriminator, gan_loss, optimizer_g, optimizer_d, scheduler_g, scheduler_d,
                         loss_weights, n_critic, grad_clip, ema_decay)
        if features not in FEATURE_SPACES:
            raise ConfigError("approach.features", f"must be one of {FEATURE_SPACES}, got {features!r}")
        if style_kind not in ("mean_std", "gram"):
            raise ConfigError("approach.style_kind", f"must be mean_std or gram, got {style_kind!r}")
        self.features_name, self.style_kind = features, style_kind
        self.content_layers = tuple(int(i) for i in content_layers)
        self.conditioned = getattr(discriminator, "cond_channels", 0) > 0
        self._vgg: list[nn.Module] = []  # a fixed feature network, kept out of state_dict and optimizers
        if features == "random_multiscale":
            from fusionlab.models.random_features import RandomMultiscaleFeatures

            options = dict(random_features or {})
            unknown = sorted(set(options) - {"kernel_sizes", "width", "seed"})
            if unknown:
                raise ConfigError("approach.random_features", f"unknown keys {unknown}: expected kernel_sizes, width, seed")
            try:
                self._vgg.append(RandomMultiscaleFeatures(int(generator.channels), **options))
            except (ValueError, TypeError) as exc:
                raise ConfigError("approach.random_features", str(exc)) from None
        if features == "vgg19":
            if not vgg_weights:
                raise ConfigError("approach.vgg_weights", "features=vgg19 needs a local VGG-19 weights file "
                                  "(python -m fusionlab.models.vgg prefetch), or use features=discriminator")
            from fusionlab.models.vgg import VGGFeatures

            self._vgg.append(VGGFeatures(vgg_weights, vgg_layers))
        self.set_evaluator(StyleEvaluator())

    # ---- inference ------------------------------------------------------------------------
    @property
    def stride(self) -> int:
        return int(getattr(self.generator, "stride", 1))

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.generator(content, style)

    def example_input(self, channels: int, size: int) -> tuple[torch.Tensor, ...]:
        """FLOPs are counted for one ``size``-square content with one style of the same size."""
        x = torch.zeros(1, channels, size, size, device=self.device)
        return x, x

    @torch.no_grad()
    def translate(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """The inference generator's output, padded to its stride and cropped back."""
        padded, (h, w) = pad_to_multiple(content, self.stride)
        return self.inference_generator(padded, style)[..., :h, :w]

    # ---- feature space ----------------------------------------------------------------------
    def feature_maps(self, image: torch.Tensor, cond: torch.Tensor | None = None) -> list[torch.Tensor]:
        if self._vgg:
            vgg = self._vgg[0].to(image.device)
            return vgg(image)
        _, feats = self.discriminator.forward_features(image, cond if self.conditioned else None)
        return [image, *feats]

    # ---- training terms ---------------------------------------------------------------------
    def generate(self, batch: dict) -> tuple[torch.Tensor, dict]:
        return self.generator(batch["content"], batch["style"]), {}

    def d_terms(self, batch: dict, fake: torch.Tensor, ctx: dict) -> tuple[dict, dict]:
        real, style = batch["style"], batch["style"]
        n = real.shape[0]
        use_r1 = self.weight("r1") > 0
        images = torch.cat([real, fake.to(real.dtype)])
        if use_r1:
            images = images.detach().requires_grad_(True)
        logits = self.discriminator(images, torch.cat([style, style]) if self.conditioned else None)
        real_pred, fake_pred = logits[:n], logits[n:]
        terms = {"adv": self.gan_loss.discriminator(real_pred, fake_pred)}
        if use_r1:
            terms["r1"] = 0.5 * r1_penalty(real_pred, images)
        stats = {"d_real": real_pred.detach().float().mean(), "d_fake": fake_pred.detach().float().mean()}
        return terms, stats

    def g_terms(self, batch: dict, fake: torch.Tensor, ctx: dict) -> dict[str, torch.Tensor]:
        content, style = batch["content"], batch["style"]
        cond = style if self.conditioned else None
        if self._vgg:
            logits = self.discriminator(fake, cond)
            out_feats = self.feature_maps(fake)
        else:
            logits, feats = self.discriminator.forward_features(fake, cond)
            out_feats = [fake, *feats]
        terms = {"adv": self.gan_loss.generator(logits)}
        with torch.no_grad():
            if self.weight("content"):
                content_feats = self.feature_maps(content, cond)
            style_feats = self.feature_maps(style, cond) if self.weight("style") else None
        if self.weight("content"):
            terms["content"] = content_loss(out_feats, content_feats, self.content_layers)
        if style_feats is not None:
            terms["style"] = style_distance(out_feats, style_feats, self.style_kind)
        if self.weight("identity"):
            terms["identity"] = F.l1_loss(self.generator(style, style).float(), style.float())
        if self.weight("tv"):
            terms["tv"] = total_variation(fake.float())
        return terms

    # ---- evaluation (fusionlab.evaluation.StyleEvaluator) -----------------------------------
    def eval_outputs(self, batch: dict) -> dict[str, torch.Tensor]:
        return {"main": self.translate(batch["content"], batch["style"])}

    # ---- fusion at inference (evaluate.py styles=[...] weights=[...] mask=...) ---------------------
    @torch.no_grad()
    def write_inference(self, datamodule, out_dir: str | Path, options: dict) -> dict:
        """Style mixing and region fusion for every content image of the test set.

        ``options``: ``styles`` (names in the style set, or image paths), ``weights`` (mixing, one per
        style), ``mask`` (a label image: its distinct gray levels, darkest first, are the regions;
        region ``k`` gets ``styles[k]``), ``blur`` (boundary smoothing, feature pixels).
        """
        from fusionlab.data.images import center_square, load_image, region_masks
        from fusionlab.utils.grid import make_grid, save_png, to_uint8
        from fusionlab.utils.errors import DataError

        styles = options.get("styles")
        if not styles:
            return {}
        out = Path(out_dir) / "fusion"
        size = datamodule.eval_size
        style_set, style_names = datamodule.style_images()
        chosen = []
        for s in styles:
            if str(s) in style_names:
                chosen.append(center_square(style_set[style_names.index(str(s))], size))
            elif Path(str(s)).is_file():
                chosen.append(center_square(load_image(s, datamodule.channels), size))
            else:
                raise DataError(s, f"not a style of data.style_dir ({', '.join(style_names)}) nor an image file",
                                "styles")
        device = self.device
        chosen = [c[None].to(device) for c in chosen]
        weights, mask_path = options.get("weights"), options.get("mask")
        if weights is not None and len(weights) != len(chosen):
            raise ConfigError("weights", f"{len(weights)} weights for {len(chosen)} styles")
        masks = region_masks(mask_path, len(chosen), size).to(device) if mask_path else None
        gen = self.inference_generator
        contents = datamodule.test_set.contents
        names = datamodule.test_set.content_names
        written, rows = [], []
        for content, name in zip(contents, names):
            x = content[None].to(device)
            alpha = float(options.get("alpha", 1.0) if options.get("alpha") is not None else 1.0)
            keep = bool(options.get("preserve_color") or False)
            mixed = gen.fuse_styles(x, chosen, weights=weights, alpha=alpha, preserve_color=keep)
            row = [content, *[c[0] for c in chosen], mixed[0]]
            written.append(save_png(to_uint8(mixed[0]), out / f"mix_{name}.png"))
            if masks is not None:
                region = gen.fuse_styles(x, chosen, masks=masks, blur=float(options.get("blur", 2.0)), alpha=alpha,
                                         preserve_color=keep)
                written.append(save_png(to_uint8(region[0]), out / f"region_{name}.png"))
                row.append(region[0])
            rows.append(row)
        grid = save_png(make_grid(rows, tile=min(size, 192)), out / "fusion_grid.png")
        return {"fusion_images": len(written), "fusion_grid": str(grid)}
