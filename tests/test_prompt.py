from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from tiny_text_encoders import CLIP_HIDDEN, T5_HIDDEN, write_tiny_text_encoders
from transformers import CLIPTextModel, CLIPTokenizer, T5EncoderModel, T5TokenizerFast

from lucidflux_cli.errors import CheckpointError
from lucidflux_cli.model import prompt as prompt_mod
from lucidflux_cli.model.prompt import DEFAULT_PROMPT, PromptEmbedding, encode_prompt, load_prompt_embeddings

CPU = torch.device("cpu")


class NotATensor:
    """Module-level so torch.save can pickle it; weights_only loading must refuse it."""


def _assert_one_line(error: CheckpointError, path: Path) -> None:
    message = str(error)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")


# --- load_prompt_embeddings -------------------------------------------------------------------


def test_load_good_file(tmp_path):
    txt, vec = torch.randn(1, 7, 8), torch.randn(1, 5)
    path = tmp_path / "prompt_embeddings.pt"
    torch.save({"txt": txt.bfloat16(), "vec": vec, "prompt": DEFAULT_PROMPT}, path)
    emb = load_prompt_embeddings(path)
    assert isinstance(emb, PromptEmbedding)
    assert emb.prompt == DEFAULT_PROMPT
    assert emb.txt.dtype == emb.vec.dtype == torch.float32
    torch.testing.assert_close(emb.txt, txt.bfloat16().float())
    assert torch.equal(emb.vec, vec)


def test_load_without_prompt_key(tmp_path):
    path = tmp_path / "e.pt"
    torch.save({"txt": torch.zeros(1, 3, 4), "vec": torch.zeros(1, 2)}, path)
    assert load_prompt_embeddings(path).prompt == ""


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"txt": torch.zeros(1, 3, 4)}, "missing 'vec'"),
        ({"txt": torch.zeros(3, 4), "vec": torch.zeros(1, 2)}, "'txt' must be 3-D"),
        ({"txt": torch.zeros(2, 3, 4), "vec": torch.zeros(1, 2)}, "batch 1"),
        (
            {"txt": torch.zeros(1, 3, 4), "vec": torch.zeros(1, 2), "extra": torch.zeros(1)},
            "unexpected 'extra'",
        ),
        ({"txt": torch.zeros(1, 3, 4, dtype=torch.long), "vec": torch.zeros(1, 2)}, "not a float tensor"),
        ({"txt": torch.zeros(1, 3, 4), "vec": torch.zeros(1, 2), "prompt": 3}, "'prompt' is not a str"),
        ([torch.zeros(1, 3, 4)], "got list"),
    ],
)
def test_load_rejects_bad_layout(tmp_path, data, needle):
    path = tmp_path / "bad.pt"
    torch.save(data, path)
    with pytest.raises(CheckpointError) as info:
        load_prompt_embeddings(path)
    _assert_one_line(info.value, path)
    assert needle in str(info.value)
    assert "expected {'txt': (1, L, C) tensor" in str(info.value)


def test_load_names_shapes_in_message(tmp_path):
    path = tmp_path / "bad.pt"
    torch.save({"txt": torch.zeros(512, 4096), "vec": torch.zeros(1, 768)}, path)
    with pytest.raises(CheckpointError, match=r"'txt': float32 tensor \(512, 4096\)"):
        load_prompt_embeddings(path)


def test_load_refuses_pickled_objects(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"txt": torch.zeros(1, 3, 4), "vec": NotATensor()}, path)
    with pytest.raises(CheckpointError) as info:
        load_prompt_embeddings(path)
    _assert_one_line(info.value, path)
    assert "refused" in str(info.value)
    assert "NotATensor" in str(info.value)


def test_load_truncated_file(tmp_path):
    path = tmp_path / "trunc.pt"
    torch.save({"txt": torch.zeros(1, 3, 4), "vec": torch.zeros(1, 2)}, path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError) as info:
        load_prompt_embeddings(path)
    _assert_one_line(info.value, path)
    assert "truncated" in str(info.value)


@pytest.mark.parametrize("content", [b"", b"not a torch file"])
def test_load_garbage_file(tmp_path, content):
    path = tmp_path / "garbage.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        load_prompt_embeddings(path)
    _assert_one_line(info.value, path)


def test_load_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_prompt_embeddings(tmp_path / "nope.pt")


# --- encode_prompt ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def flux_dir(tmp_path_factory) -> Path:
    return write_tiny_text_encoders(tmp_path_factory.mktemp("flux"))


@pytest.fixture(scope="module")
def default_embedding(flux_dir) -> PromptEmbedding:
    return encode_prompt(DEFAULT_PROMPT, flux_dir, device=CPU)


def test_encode_shapes(default_embedding):
    assert default_embedding.txt.shape == (1, 512, T5_HIDDEN)
    assert default_embedding.vec.shape == (1, CLIP_HIDDEN)
    for t in (default_embedding.txt, default_embedding.vec):
        assert t.dtype == torch.float32 and t.device == CPU and torch.isfinite(t).all()
    assert default_embedding.prompt == DEFAULT_PROMPT


def test_encode_is_deterministic(flux_dir, default_embedding):
    again = encode_prompt(DEFAULT_PROMPT, flux_dir, device=CPU)
    assert torch.equal(again.txt, default_embedding.txt)
    assert torch.equal(again.vec, default_embedding.vec)


def test_tiny_encoders_are_reproducible(tmp_path, default_embedding):
    other = encode_prompt(DEFAULT_PROMPT, write_tiny_text_encoders(tmp_path), device=CPU)
    assert torch.equal(other.txt, default_embedding.txt)
    assert torch.equal(other.vec, default_embedding.vec)


def test_different_prompts_differ(flux_dir, default_embedding):
    other = encode_prompt("a sharp photo of an old face", flux_dir, device=CPU)
    assert not torch.allclose(other.txt, default_embedding.txt)
    assert not torch.allclose(other.vec, default_embedding.vec)


def test_tiny_tokenizers_cover_the_default_prompt(flux_dir):
    for cls, name in ((CLIPTokenizer, "tokenizer"), (T5TokenizerFast, "tokenizer_2")):
        tokenizer = cls.from_pretrained(flux_dir / name)
        ids = tokenizer(DEFAULT_PROMPT, add_special_tokens=False)["input_ids"]
        # No <unk>, and not merely one id per character: the merges / word pieces are in use.
        assert tokenizer.unk_token_id not in ids
        assert len(set(ids)) > 5
        assert len(ids) < len(DEFAULT_PROMPT)


def test_encode_matches_reference_computation(flux_dir, default_embedding):
    # The reference HFEmbedder: pad to max_length, truncate, attention_mask=None.
    def reference(tok_cls, model_cls, sub, max_length, key):
        tokenizer = tok_cls.from_pretrained(flux_dir / f"tokenizer{sub}")
        model = model_cls.from_pretrained(flux_dir / f"text_encoder{sub}", dtype=torch.float32).eval()
        batch = tokenizer(
            [DEFAULT_PROMPT],
            truncation=True,
            max_length=max_length,
            return_length=False,
            return_overflowing_tokens=False,
            padding="max_length",
            return_tensors="pt",
        )
        with torch.no_grad():
            return model(input_ids=batch["input_ids"], attention_mask=None, output_hidden_states=False)[key]

    vec = reference(CLIPTokenizer, CLIPTextModel, "", 77, "pooler_output")
    txt = reference(T5TokenizerFast, T5EncoderModel, "_2", 512, "last_hidden_state")
    assert torch.equal(default_embedding.vec, vec)
    assert torch.equal(default_embedding.txt, txt)


def test_long_prompt_is_truncated(flux_dir):
    emb = encode_prompt("restore " * 400, flux_dir, device=CPU)
    assert emb.txt.shape == (1, 512, T5_HIDDEN) and emb.vec.shape == (1, CLIP_HIDDEN)


@pytest.fixture
def count_loads(monkeypatch):
    calls = []

    def counting(loader):
        def wrapped(*args, **kwargs):
            calls.append(loader.__name__)
            return loader(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(prompt_mod, "load_clip", counting(prompt_mod.load_clip))
    monkeypatch.setattr(prompt_mod, "load_t5", counting(prompt_mod.load_t5))
    return calls


def test_cache_hit_skips_encoders(flux_dir, default_embedding, tmp_path, count_loads):
    cache = tmp_path / "cache"
    first = encode_prompt(DEFAULT_PROMPT, flux_dir, device=CPU, cache_dir=cache)
    assert count_loads == ["load_clip", "load_t5"]
    assert torch.equal(first.txt, default_embedding.txt)
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].suffix == ".safetensors"  # no temp file left behind

    hit = encode_prompt(DEFAULT_PROMPT, flux_dir, device=CPU, cache_dir=cache)
    assert count_loads == ["load_clip", "load_t5"]
    assert torch.equal(hit.txt, first.txt) and torch.equal(hit.vec, first.vec)
    assert hit.prompt == DEFAULT_PROMPT

    encode_prompt("another prompt", flux_dir, device=CPU, cache_dir=cache)
    assert len(count_loads) == 4
    assert len(list(cache.iterdir())) == 2


def test_cache_key_follows_encoder_files(flux_dir, tmp_path, count_loads):
    local = tmp_path / "flux"
    shutil.copytree(flux_dir, local)
    cache = tmp_path / "cache"
    encode_prompt(DEFAULT_PROMPT, local, device=CPU, cache_dir=cache)
    config_path = local / "text_encoder_2" / "config.json"
    config = json.loads(config_path.read_text())
    config["layer_norm_epsilon"] = 1e-5
    config_path.write_text(json.dumps(config))
    encode_prompt(DEFAULT_PROMPT, local, device=CPU, cache_dir=cache)
    assert len(count_loads) == 4
    assert len(list(cache.iterdir())) == 2


def test_corrupt_cache_entry_is_recomputed(flux_dir, default_embedding, tmp_path, count_loads):
    cache = tmp_path / "cache"
    encode_prompt(DEFAULT_PROMPT, flux_dir, device=CPU, cache_dir=cache)
    (entry,) = cache.iterdir()
    entry.write_bytes(b"garbage")
    again = encode_prompt(DEFAULT_PROMPT, flux_dir, device=CPU, cache_dir=cache)
    assert len(count_loads) == 4
    assert torch.equal(again.txt, default_embedding.txt)
    assert encode_prompt(DEFAULT_PROMPT, flux_dir, device=CPU, cache_dir=cache).prompt == DEFAULT_PROMPT
    assert len(count_loads) == 4


@pytest.mark.parametrize("missing", ["text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2"])
def test_missing_subfolder(flux_dir, tmp_path, missing, count_loads):
    local = tmp_path / "flux"
    shutil.copytree(flux_dir, local, ignore=shutil.ignore_patterns(missing))
    with pytest.raises(CheckpointError) as info:
        encode_prompt(DEFAULT_PROMPT, local, device=CPU, cache_dir=tmp_path / "cache")
    assert info.value.path == local / missing
    assert "missing folder" in str(info.value) and "FLUX.1-dev" in str(info.value)
    assert count_loads == []


def test_unloadable_weights_name_the_folder(flux_dir, tmp_path):
    local = tmp_path / "flux"
    shutil.copytree(flux_dir, local)
    weights = local / "text_encoder_2" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:64])
    with pytest.raises(CheckpointError) as info:
        encode_prompt(DEFAULT_PROMPT, local, device=CPU)
    assert info.value.path == local / "text_encoder_2"
    assert "T5EncoderModel" in str(info.value) and "\n" not in str(info.value)
