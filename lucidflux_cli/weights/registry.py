"""The one registry of default weight files: what each is, where it comes from, how it is pinned."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lucidflux_cli.errors import LucidFluxError


@dataclass(frozen=True)
class WeightPaths:
    """Local paths of every weight file the pipeline needs."""

    flux: Path  # flux1-dev.safetensors (BFL, bf16 or fp8) or a FLUX.1-dev diffusers folder
    ae: Path  # ae.safetensors or a diffusers vae/ folder (or the FLUX.1-dev folder)
    lucidflux: Path  # lucidflux.pth
    swinir: Path | None  # general_swinir_v1.ckpt (None when another remover is chosen)
    siglip: Path  # SigLIP folder
    prompt_embeddings: Path  # prompt_embeddings.pt
    text_encoders: Path | None = None  # FLUX.1-dev folder with text_encoder*/ and tokenizer*/ (--prompt only)


GB = 1_000_000_000
# Headroom on top of the bytes still to fetch: the filesystem, logs and the prompt cache need some too.
DISK_MARGIN = 0.05


@dataclass(frozen=True)
class WeightFile:
    """One default weight: a file, or a folder of ``files``, from a Hugging Face repository.

    ``size`` is the approximate size in bytes of everything the entry downloads (``None``:
    unknown); it is shown by ``weights list`` and used only as a fallback for the disk-space
    check when the hub does not report a size. ``sha256`` pins a single-file entry's content;
    without it ``weights verify`` checks against the hub's own hash recorded in the cache.
    """

    name: str  # the WeightPaths field it fills
    repo: str
    filename: str | None  # None: a folder made of ``files``
    revision: str = "main"
    files: tuple[str, ...] = ()
    size: int | None = None
    sha256: str | None = None
    gated: bool = False
    about: str = ""
    optional: bool = False  # not part of a default run (nor of a bare ``weights download``)

    @property
    def filenames(self) -> tuple[str, ...]:
        return (self.filename,) if self.filename is not None else self.files

    @property
    def source(self) -> str:
        what = self.filename if self.filename is not None else "{" + ",".join(self.files) + "}"
        return f"{self.repo}:{what}@{self.revision}"

    @property
    def flag(self) -> str:
        """The ``restore`` option that replaces it with a local path."""
        return "--" + self.name.replace("_", "-")


REGISTRY: dict[str, WeightFile] = {
    w.name: w
    for w in (
        # sha256 as published by Black Forest Labs (github.com/black-forest-labs/flux README) and
        # in widely used model manifests; the other files' hashes are not published: the hub's own
        # LFS hash is checked instead (weights verify).
        WeightFile(
            "flux",
            "black-forest-labs/FLUX.1-dev",
            "flux1-dev.safetensors",
            size=23_802_932_552,
            sha256="4610115bb0c89560703c892c59ac2742fa821e60ef5871b33493ba544683abd7",
            gated=True,
            about="FLUX.1-dev transformer (12B)",
        ),
        WeightFile(
            "ae",
            "black-forest-labs/FLUX.1-dev",
            "ae.safetensors",
            size=335_304_388,
            sha256="afc8e28272cd15db3919bacdb6918ce9c1ed22e96cb12c4d5ed0fba823529e38",
            gated=True,
            about="FLUX.1 autoencoder",
        ),
        WeightFile(
            "lucidflux",
            "W2GenAI/LucidFlux",
            "lucidflux.pth",
            about="condition branches, modulation, connector",
        ),
        WeightFile(
            "prompt_embeddings",
            "W2GenAI/LucidFlux",
            "prompt_embeddings.pt",
            about="precomputed prompt (T5/CLIP)",
        ),
        WeightFile(
            "swinir",
            "lxq007/DiffBIR",
            "general_swinir_v1.ckpt",
            size=68_000_000,
            about="SwinIR degradation remover (DiffBIR)",
        ),
        WeightFile(
            "text_encoders",
            "black-forest-labs/FLUX.1-dev",
            None,
            files=(
                "text_encoder/config.json",
                "text_encoder/model.safetensors",
                "tokenizer/merges.txt",
                "tokenizer/special_tokens_map.json",
                "tokenizer/tokenizer_config.json",
                "tokenizer/vocab.json",
                "text_encoder_2/config.json",
                "text_encoder_2/model-00001-of-00002.safetensors",
                "text_encoder_2/model-00002-of-00002.safetensors",
                "text_encoder_2/model.safetensors.index.json",
                "tokenizer_2/special_tokens_map.json",
                "tokenizer_2/spiece.model",
                "tokenizer_2/tokenizer.json",
                "tokenizer_2/tokenizer_config.json",
            ),
            size=9_800_000_000,
            gated=True,
            about="CLIP-L and T5-XXL text encoders (only for --prompt)",
            optional=True,
        ),
        WeightFile(
            "siglip",
            "google/siglip2-so400m-patch16-512",
            None,
            files=("config.json", "model.safetensors", "preprocessor_config.json"),
            size=4_500_000_000,
            about="SigLIP vision tower",
        ),
    )
}


class WeightsUnavailable(LucidFluxError):
    """Weight files are neither given locally nor obtainable (offline, gated, no network, no space).

    ``problems`` holds one line per file or cause; ``str()`` is a heading plus those lines.
    """

    def __init__(self, heading: str, problems: Sequence[str] = ()):
        self.problems = list(problems)
        super().__init__("\n  ".join([heading, *self.problems]))


def entries(names: Iterable[str] | None = None) -> list[WeightFile]:
    """Registry entries by name (all when ``names`` is empty); KeyError names the unknown ones."""
    if not names:
        return [entry for entry in REGISTRY.values() if not entry.optional]
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise KeyError(f"unknown weight(s) {', '.join(unknown)}; known: {', '.join(REGISTRY)}")
    return [REGISTRY[n] for n in dict.fromkeys(names)]


def registry_markdown() -> str:
    """The registry as a Markdown table (docs/weights.md embeds it)."""
    rows = [
        "| name | what | repository | file(s) | revision | approx. size | pinned sha256 | option |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in REGISTRY.values():
        shown = dict.fromkeys(f.split("/")[0] + "/" if "/" in f else f for f in e.filenames)
        files = ", ".join(f"`{f}`" for f in shown) + ("" if e.filename else " (folder)")
        gated = " (gated)" if e.gated else ""
        size = format_size(e.size)
        pinned = f"`{e.sha256[:12]}…`" if e.sha256 else "hub's hash"
        rows.append(
            f"| {e.name} | {e.about} | `{e.repo}`{gated} | {files} | `{e.revision}` | {size} | {pinned} "
            f"| `{e.flag}` |"
        )
    return "\n".join(rows)


def format_size(size: int | None, approx: bool = True) -> str:
    """``~23.8 GB`` (``approx``), ``335 MB``, ``?`` for unknown."""
    if size is None:
        return "?"
    prefix = "~" if approx else ""
    for unit, scale in (("GB", GB), ("MB", 1_000_000), ("KB", 1000)):
        if size >= scale:
            return f"{prefix}{size / scale:.{1 if unit == 'GB' else 0}f} {unit}"
    return f"{size} B"
