"""Sampling from a latent-variable generator, shared by the GANs and the VAE (``task=generate``).

Evaluation, grids, interpolations and the predictors draw every sample from fixed, seeded latent
vectors (:func:`~fusionlab.data.generation.seeded_latents`), so the same samples come out in every
epoch and run. A subclass sets ``latent_dim`` and ``grid_samples`` and provides
``inference_generator`` (the network that turns latents into images at evaluation).
"""

from pathlib import Path

import torch
import torch.nn.functional as F

from fusionlab.data.generation import seeded_latents


class LatentSampler:
    """Mixin of the generation approaches: sampling, grids, interpolations, evaluation outputs."""

    latent_dim: int
    grid_samples: int

    # ---- sampling ---------------------------------------------------------------------------
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z)

    def example_input(self, channels: int, size: int) -> tuple[torch.Tensor, ...]:
        """FLOPs are per generated image (at the generator's own size)."""
        return (torch.zeros(1, self.latent_dim, device=self.device),)

    def flops_key(self, size: int) -> str:
        """FLOPs are counted for one sample at the generator's own resolution, and named so."""
        image_size = getattr(self.generator, "image_size", None)
        if image_size is None and hasattr(self, "_members"):  # a mixture of separate networks
            image_size = getattr(self._members()[0], "image_size", None)
        return f"flops_per_sample_{image_size}" if image_size else "flops_per_sample"

    def latents(self, indices: torch.Tensor, seed: int) -> torch.Tensor:
        return seeded_latents(indices.cpu(), seed, self.latent_dim).to(self.device)

    @torch.no_grad()
    def sample_latents(self, z: torch.Tensor, indices: torch.Tensor | None = None, seed: int = 0) -> torch.Tensor:
        """Images of the inference (EMA) generator for latents ``z``."""
        return self.inference_generator(z)

    def grid_rows(self, seed: int) -> list[list[torch.Tensor]]:
        """Rows of fixed-latent samples for the sample-grid callback (square-ish)."""
        n = self.grid_samples
        z = self.latents(torch.arange(n), seed)
        images = self.sample_latents(z, torch.arange(n), seed).cpu()
        cols = max(1, int(round(n ** 0.5)))
        return [list(images[i : i + cols]) for i in range(0, n, cols)]

    @torch.no_grad()
    def interpolation_rows(self, pairs: int = 4, steps: int = 8, seed: int = 7) -> list[list[torch.Tensor]]:
        """Latent interpolation strips (spherical) between fixed pairs of latents."""
        z = self.latents(torch.arange(2 * pairs), seed)
        rows = []
        t = torch.linspace(0, 1, steps, device=self.device)
        for p in range(pairs):
            a, b = z[2 * p], z[2 * p + 1]
            omega = torch.arccos((F.normalize(a, dim=0) * F.normalize(b, dim=0)).sum().clamp(-1 + 1e-6, 1 - 1e-6))
            path = (torch.sin((1 - t) * omega)[:, None] * a + torch.sin(t * omega)[:, None] * b) / torch.sin(omega)
            rows.append(list(self.interpolate_images(path).cpu()))
        return rows

    def interpolate_images(self, z: torch.Tensor) -> torch.Tensor:
        return self.inference_generator(z)

    # ---- evaluation (fusionlab.evaluation.GenerationEvaluator) -------------------------------
    def eval_outputs(self, batch: dict) -> dict[str, torch.Tensor]:
        """Samples from the fixed latents that the batch names (same samples in every run)."""
        seed = int(batch["seed"][0])
        z = self.latents(batch["index"], seed)
        return {"main": self.sample_latents(z, batch["index"], seed).float().clamp(0, 1)}

    @torch.no_grad()
    def write_inference(self, datamodule, out_dir: str | Path, options: dict) -> dict:
        """Sample grid and latent interpolation strips (the samples themselves are written by the
        image-writer callback during test)."""
        from fusionlab.utils.grid import enlarge, make_grid, save_png

        out = Path(out_dir)
        tile = max(64, int(datamodule.image_size))
        grid = save_png(make_grid(enlarge(self.grid_rows(datamodule.seed + 1), tile), tile=tile),
                        out / "samples_grid.png")
        strips = save_png(make_grid(enlarge(self.interpolation_rows(), tile), tile=tile), out / "interpolation.png")
        return {"samples_grid": str(grid), "interpolation": str(strips)}
