"""approach=generator_fusion: M generators of any kind on one shared latent, fused at the output
(joint, and two-stage from a GAN and a VAE checkpoint), judged by one discriminator."""

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from fusionlab.approaches.generator_fusion import FusedGenerator, GeneratorFusion
from fusionlab.fusion import Learned, Mean
from fusionlab.losses import GANLoss
from fusionlab.models import DCGANDiscriminator, DCGANGenerator
from fusionlab.pipeline import evaluate, train
from fusionlab.utils.errors import ConfigError, DataError
from tests.helpers import compose_cfg, groups_of

# its module fixtures are built once: all of its tests on one pytest-xdist worker
pytestmark = pytest.mark.xdist_group("test_generator_fusion")

BASE = ["task=generate", "data=digits", "data.image_size=16", "data.val_samples=32", "data.test_samples=32",
        "data.eval_batch_size=32", "data.batch_size=16", "logger=csv", "metrics.fid.extractor=none",
        "trainer.max_epochs=1", "trainer.limit_train_batches=3", "trainer.accelerator=cpu",
        "callbacks.progress_bar=null", "trainer.enable_progress_bar=false"]
SMALL = ["approach.generators.g1.width=8", "approach.generators.g2.width=8", "approach.discriminator.width=8"]


def test_members_read_their_own_leading_latent_coordinates():
    torch.manual_seed(0)
    a, b = DCGANGenerator(8, 1, 16, 8).eval(), DCGANGenerator(4, 1, 16, 8).eval()
    fused = FusedGenerator({"a": a, "b": b}, Learned(2, 1)).eval()
    assert fused.latent_dim == 8
    z = torch.randn(3, 8)
    images = fused.member_images(z)
    assert torch.allclose(images[0], a(z)) and torch.allclose(images[1], b(z[:, :4]))
    assert torch.allclose(fused(z), (0.5 * images[0] + 0.5 * images[1]).clamp(0, 1), atol=1e-6)  # starts uniform


def test_bad_generator_fusions_fail_at_start_naming_the_key():
    parts = dict(discriminator=DCGANDiscriminator(1, 16, 8), gan_loss=GANLoss("bce"), optimizer_g=torch.optim.Adam,
                 optimizer_d=torch.optim.Adam)
    two = {"a": DCGANGenerator(8, 1, 16, 8), "b": DCGANGenerator(8, 1, 16, 8)}
    with pytest.raises(ConfigError, match="^approach.generators: fusing needs at least 2"):
        GeneratorFusion({"a": two["a"]}, fusion=Learned, **parts)
    with pytest.raises(ConfigError, match="^approach.generators: members must make images of one shape"):
        GeneratorFusion({"a": two["a"], "c": DCGANGenerator(8, 1, 32, 8)}, fusion=Learned, **parts)
    with pytest.raises(ConfigError, match="^fusion: two_stage trains only the fuser"):
        GeneratorFusion(two, fusion=Mean, mode="two_stage", member_checkpoints=["x", "y"], **parts)
    with pytest.raises(ConfigError, match="^approach.member_checkpoints: two_stage needs one checkpoint per member"):
        GeneratorFusion(two, fusion=Learned, mode="two_stage", member_checkpoints=["x"], **parts)
    with pytest.raises(ConfigError, match="^approach.mode"):
        GeneratorFusion(two, fusion=Learned, mode="both", **parts)


def test_joint_fusion_trains_members_and_fuser_and_writes_member_rows(tmp_path):
    metrics = train(compose_cfg(tmp_path / "joint", [*BASE, *SMALL, "approach=generator_fusion", "fusion=gated",
                                                     f"data.cache_dir={tmp_path / 'cache'}"]))
    assert 1 <= metrics["test/modes_covered"] <= 10
    ckpt = torch.load(tmp_path / "joint" / "checkpoints" / "last.ckpt", weights_only=False)
    assert any(k.startswith("generator.members.1.") for k in ckpt["state_dict"])
    from skimage import io as skio

    grid = skio.imread(tmp_path / "joint" / "samples" / "gen_epoch000.png")
    assert grid.shape[0] == 3 * (64 + 2) - 2  # two member rows and the fused row


@pytest.fixture(scope="module")
def gan_and_vae(tmp_path_factory):
    root = tmp_path_factory.mktemp("members")
    train(compose_cfg(root / "gan", [*BASE, "approach=gan", "approach.generator.width=8",
                                     "approach.discriminator.width=8", f"data.cache_dir={root / 'cache'}"]))
    GlobalHydra.instance().clear()
    train(compose_cfg(root / "vae", [*BASE, "approach=vae", "approach.generator.width=8", "approach.encoder.width=8",
                                     "approach.generator.latent_dim=32", f"data.cache_dir={root / 'cache'}"]))
    return root


def test_two_stage_fuses_a_gan_and_a_vae_decoder_and_trains_only_the_fuser(tmp_path, gan_and_vae):
    gan, vae = (gan_and_vae / n / "checkpoints" / "last.ckpt" for n in ("gan", "vae"))
    GlobalHydra.instance().clear()
    over = [*BASE, *SMALL, "approach=generator_fusion", "approach.mode=two_stage", "fusion=learned",
            "approach.generators.g2.latent_dim=32", f"approach.member_checkpoints=[{gan},{vae}]",
            f"data.cache_dir={tmp_path / 'cache'}"]
    metrics = train(compose_cfg(tmp_path / "fused", over))
    fused = torch.load(tmp_path / "fused" / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    gan_state = torch.load(gan, weights_only=False)["state_dict"]
    vae_state = torch.load(vae, weights_only=False)["state_dict"]
    key = next(k for k in gan_state if k.startswith("ema.module.") and k.endswith("weight"))
    member_key = key.replace("ema.module.", "generator.members.0.")
    assert torch.equal(fused[member_key], gan_state[key]), "the GAN member (its EMA generator) is frozen"
    vkey = next(k for k in vae_state if k.startswith("generator.") and k.endswith("weight"))
    assert torch.equal(fused[vkey.replace("generator.", "generator.members.1.")], vae_state[vkey]), "VAE decoder frozen"
    assert not torch.equal(fused["generator.fusion.logits"], torch.zeros(2)), "the fuser trained"
    # reloaded and evaluated on the same seeded latents
    GlobalHydra.instance().clear()
    ecfg = compose_cfg(tmp_path / "eval", [f"ckpt_path={tmp_path / 'fused' / 'checkpoints' / 'best.ckpt'}",
                                           "logger=csv", f"data.cache_dir={tmp_path / 'cache'}"],
                       config_name="eval", hydra_node=True)
    result = evaluate(ecfg, [], groups_of(ecfg))
    assert result["metrics"]["test/fd_digits"] == pytest.approx(metrics["test/fd_digits"], rel=1e-4)
    # a member checkpoint of another shape is refused with one line naming it
    GlobalHydra.instance().clear()
    bad = [o.replace("approach.generators.g2.latent_dim=32", "approach.generators.g2.latent_dim=16") for o in over]
    with pytest.raises(DataError, match=r"approach.member_checkpoints\[1\]"):
        train(compose_cfg(tmp_path / "bad", bad))


def test_heterogeneous_mixture_of_two_gans_and_a_frozen_vae_decoder(tmp_path, gan_and_vae):
    vae = gan_and_vae / "vae" / "checkpoints" / "last.ckpt"
    over = [*BASE, "approach=gan_mixture", "approach.num_generators=3", "approach.discriminator.width=8",
            "approach.share_layers=false", "+generator@approach.generators.gan1=dcgan",
            "+generator@approach.generators.gan2=dcgan",
            "+generator@approach.generators.vae=dcgan", "approach.generators.gan1.width=8",
            "approach.generators.gan2.width=8", "approach.generators.vae.width=8",
            "approach.generators.vae.latent_dim=32", f"approach.member_checkpoints=[null,null,{vae}]",
            "approach.frozen_members=[vae]", "approach.learn_weights=true", f"data.cache_dir={tmp_path / 'cache'}"]
    metrics = train(compose_cfg(tmp_path / "mix", over))
    assert 1 <= metrics["test/modes_covered"] <= 10
    state = torch.load(tmp_path / "mix" / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    vae_state = torch.load(vae, weights_only=False)["state_dict"]
    vkey = next(k for k in vae_state if k.startswith("generator.") and k.endswith("weight"))
    assert torch.equal(state[vkey.replace("generator.", "generator.2.", 1)], vae_state[vkey]), "frozen VAE decoder"
    assert state["generator.0.net.0.weight"].shape[0] == 64 and state["generator.2.net.0.weight"].shape[0] == 32
    GlobalHydra.instance().clear()
    with pytest.raises(ConfigError, match="^approach.frozen_members: unknown member"):
        train(compose_cfg(tmp_path / "bad", [o.replace("frozen_members=[vae]", "frozen_members=[vea]") for o in over]))
