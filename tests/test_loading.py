"""Every released layout loads strictly; bad files fail with the file and the keys named."""

from __future__ import annotations

import pytest
import torch
from conftest import weight_paths
from safetensors.torch import load_file, save_file
from test_pipeline import photo
from tiny_weights import write_tiny_diffusers_flux

from lucidflux_cli.errors import CheckpointError
from lucidflux_cli.model.components import load_components
from lucidflux_cli.model.loading import models
from lucidflux_cli.model.pipeline import LucidFluxPipeline, RestoreSettings

ONE_STEP = RestoreSettings(steps=2, seed=3)


def restore(paths, size=(64, 48)):
    components = load_components(paths, torch.device("cpu"), torch.float32)
    return LucidFluxPipeline(components, torch.device("cpu"), torch.float32)(
        photo(80, 60), size=size, settings=ONE_STEP
    )


@pytest.fixture(scope="module")
def reference_output(tiny_paths):
    return restore(tiny_paths)


def test_bfl_and_diffusers_layouts_give_the_same_image(tiny_release, tmp_path, reference_output):
    folder = write_tiny_diffusers_flux(tmp_path / "FLUX.1-dev", seed=0)
    from_folder = restore(weight_paths(tiny_release, flux=folder, ae=folder / "vae"))
    assert abs(from_folder - reference_output).max() < 1e-5


def test_comfyui_prefixed_single_file_loads(tiny_release, tmp_path, reference_output):
    state = load_file(tiny_release.flux)
    prefixed = tmp_path / "flux-comfy.safetensors"
    save_file({f"model.diffusion_model.{k}": v for k, v in state.items()}, prefixed)
    # same tensors; CPU kernels may differ in the last bit between calls
    assert abs(restore(weight_paths(tiny_release, flux=prefixed)) - reference_output).max() < 1e-5


def test_fp8_single_file_is_upcast_on_load(tiny_release, tmp_path):
    state = load_file(tiny_release.flux)
    fp8 = {k: v.to(torch.float8_e4m3fn) if v.ndim == 2 else v for k, v in state.items()}
    path = tmp_path / "flux1-dev-fp8.safetensors"
    save_file(fp8, path)
    model = models.load_flux_transformer(path, torch.float32)
    expected = state["img_in.weight"].to(torch.float8_e4m3fn).float()
    assert torch.equal(model.x_embedder.weight, expected)
    # ComfyUI "scaled fp8": weight * scale_weight
    scaled = dict(fp8, **{"img_in.scale_weight": torch.tensor(0.5)})
    save_file(scaled, path)
    model = models.load_flux_transformer(path, torch.float32)
    assert torch.equal(model.x_embedder.weight, expected * 0.5)


def test_swinir_with_or_without_module_prefix(tiny_release, tmp_path):
    raw = torch.load(tiny_release.swinir, weights_only=True)
    assert all(k.startswith("module.") for k in raw["state_dict"])
    plain = tmp_path / "swinir.pth"
    torch.save({k.removeprefix("module."): v for k, v in raw["state_dict"].items()}, plain)
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(models.load_swinir(tiny_release.swinir)(x), models.load_swinir(plain)(x))


def test_truncated_checkpoint_names_the_file(tiny_release, tmp_path):
    broken = tmp_path / "flux1-dev.safetensors"
    broken.write_bytes(tiny_release.flux.read_bytes()[:5000])
    with pytest.raises(CheckpointError) as info:
        models.load_flux_transformer(broken, torch.float32)
    message = str(info.value)
    assert str(broken) in message and "\n" not in message


def test_missing_and_unexpected_keys_are_named(tiny_release, tmp_path):
    state = load_file(tiny_release.flux)
    del state["double_blocks.3.img_attn.proj.bias"]
    state["double_blocks.3.img_attn.lora_down.weight"] = torch.zeros(2, 2)
    path = tmp_path / "flux-wrong.safetensors"
    save_file(state, path)
    with pytest.raises(CheckpointError) as info:
        models.load_flux_transformer(path, torch.float32)
    message = str(info.value)
    assert "double_blocks.3.img_attn.proj.bias" in message and "lora_down" in message and str(path) in message


def test_lucidflux_parts_are_checked_strictly(tiny_release, tmp_path):
    parts = torch.load(tiny_release.lucidflux, weights_only=True)
    parts["condition_ldr"].pop("controlnet_blocks.1.weight")
    path = tmp_path / "lucidflux.pth"
    torch.save(parts, path)
    with pytest.raises(CheckpointError, match="condition_ldr.*controlnet_blocks.1.weight"):
        models.load_dual_branch(path, 19, torch.float32)
    del parts["connector"]
    torch.save(parts, path)
    with pytest.raises(CheckpointError, match="missing key.*connector"):
        models.read_lucidflux(path)


def test_wrong_file_in_a_slot_is_a_clear_error(tiny_release):
    with pytest.raises(CheckpointError, match="not a Flux"):
        models.load_flux_transformer(tiny_release.ae, torch.float32)
    with pytest.raises(CheckpointError, match=str(tiny_release.flux)):
        models.load_flux_vae(tiny_release.flux, torch.float32)


class Sneaky:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickles_are_loaded_weights_only(tmp_path):
    path = tmp_path / "lucidflux.pth"
    torch.save({"condition_lq": Sneaky()}, path)
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        models.read_lucidflux(path)


def test_siglip_folder_without_weights_is_an_error(tmp_path, tiny_release):
    folder = tmp_path / "siglip"
    folder.mkdir()
    (folder / "config.json").write_text((tiny_release.siglip / "config.json").read_text())
    with pytest.raises(CheckpointError, match="siglip"):
        models.load_siglip(folder, torch.float32)
