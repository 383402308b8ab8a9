"""precision="auto": the rule, its probe of the CPU, the pathological-torch guard, no autocast."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from speakerembed import SpeakerEmbedder
from speakerembed.cli import main
from speakerembed.stages import encoder
from speakerembed.stages.encoder import (
    ModuleEncoder,
    VoiceEncoder,
    cpu_bf16_ok,
    cpu_has_native_bf16,
    resolve_precision,
)

CPU = torch.device("cpu")
AUDIO = Path(__file__).resolve().parents[2] / "examples" / "audio"


def _flags_from_cpuinfo() -> set[str]:
    """An independent reading of /proc/cpuinfo's flags."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


@pytest.mark.parametrize(
    ("flags", "native"),
    [
        ({"avx", "avx2", "fma"}, False),
        ({"avx2", "avx512f", "avx512bw", "avx512vl"}, False),  # AVX-512 without bf16 emulates it
        ({"avx2", "avx512f", "avx512_bf16"}, True),
        ({"avx2", "amx_tile", "amx_bf16"}, True),
    ],
)
def test_native_bf16_read_from_cpu_flags(
    monkeypatch: pytest.MonkeyPatch, flags: set[str], native: bool
) -> None:
    monkeypatch.setattr(encoder, "_cpu_flags", lambda: frozenset(flags))
    assert cpu_has_native_bf16() is native


@pytest.mark.parametrize(("capability", "native"), [("AVX2", False), ("AVX512", False), ("AMX", True)])
def test_native_bf16_without_cpuinfo_asks_torch(
    monkeypatch: pytest.MonkeyPatch, capability: str, native: bool
) -> None:
    monkeypatch.setattr(encoder, "_cpu_flags", frozenset)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    assert cpu_has_native_bf16() is native


def test_native_bf16_on_this_machine_matches_its_flags() -> None:
    flags = _flags_from_cpuinfo()
    if not flags:
        pytest.skip("no /proc/cpuinfo flags on this machine")
    assert cpu_has_native_bf16() is bool(flags & {"avx512_bf16", "amx_bf16"})


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16"), (False, "fp32")])
def test_auto_on_cpu_follows_native_bf16(
    monkeypatch: pytest.MonkeyPatch, native: bool, expected: str
) -> None:
    monkeypatch.setattr(encoder, "cpu_has_native_bf16", lambda: native)
    precision, reason = resolve_precision("auto", CPU)
    assert precision == expected
    assert reason.startswith("auto:")


@pytest.mark.parametrize(("supported", "expected"), [(True, "bf16"), (False, "fp32")])
def test_auto_on_cuda_follows_bf16_support(
    monkeypatch: pytest.MonkeyPatch, supported: bool, expected: str
) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: supported)
    assert resolve_precision("auto", torch.device("cuda"))[0] == expected


def test_auto_elsewhere_is_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encoder, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", torch.device("mps"))[0] == "fp32"


def test_explicit_precisions_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encoder, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("fp32", CPU)[0] == "fp32"
    assert resolve_precision("bf16", CPU)[0] == "bf16"


def test_release_parsing_of_the_slow_torch_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encoder, "CPU_BF16_SLOW_TORCH", frozenset({"2.13"}))
    assert not cpu_bf16_ok("2.13.0+cpu")
    assert not cpu_bf16_ok("2.13.1")
    assert cpu_bf16_ok("2.6.0+cu124")
    assert cpu_bf16_ok("2.1.3")


def test_no_supported_torch_is_listed_as_slow() -> None:
    # The measured state (docs/performance.rst): module-cast bf16 is sane on 2.6 to 2.13.
    assert cpu_bf16_ok("2.6.0")
    assert cpu_bf16_ok("2.13.0")


def test_pathological_torch_makes_auto_and_bf16_fall_back(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    release = ".".join(torch.__version__.split("+")[0].split(".")[:2])
    monkeypatch.setattr(encoder, "CPU_BF16_SLOW_TORCH", frozenset({release}))
    monkeypatch.setattr(encoder, "cpu_has_native_bf16", lambda: True)
    precision, reason = resolve_precision("auto", CPU)
    assert precision == "fp32"
    assert torch.__version__ in reason
    with caplog.at_level(logging.WARNING, logger="speakerembed"):
        assert resolve_precision("bf16", CPU)[0] == "fp32"
    assert "falls back to 'fp32'" in caplog.text
    # On a GPU the CPU's torch problem does not apply.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("bf16", torch.device("cuda"))[0] == "bf16"
    enc = ModuleEncoder(VoiceEncoder(), "bf16")
    assert enc.precision == "fp32"
    assert all(p.dtype == torch.float32 for p in enc.module.parameters())


def test_auto_resolves_to_a_concrete_precision_and_shows_it() -> None:
    module = VoiceEncoder()
    emb = SpeakerEmbedder(encoder=module, precision="auto")
    expected = "bf16" if cpu_has_native_bf16() and cpu_bf16_ok() else "fp32"
    assert emb.precision == expected
    assert emb.requested_precision == "auto"
    assert emb.encoder.precision == expected
    assert f"precision={expected!r} (auto)" in repr(emb)
    assert "(auto)" not in repr(SpeakerEmbedder(encoder=module, precision="fp32"))
    dtypes = {p.dtype for p in emb.encoder.module.parameters()}
    assert (torch.bfloat16 in dtypes) is (expected == "bf16")


def test_bf16_on_cpu_casts_the_module_and_never_autocasts(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_autocast(*args: object, **kwargs: object) -> None:
        raise AssertionError("speakerembed must not use torch.autocast")

    monkeypatch.setattr(torch, "autocast", no_autocast)
    monkeypatch.setattr(torch.amp, "autocast", no_autocast)
    monkeypatch.setattr(encoder, "cpu_has_native_bf16", lambda: True)  # no emulation warning
    torch.manual_seed(0)
    module = VoiceEncoder()
    enc = ModuleEncoder(module, "bf16")
    assert enc.precision == "bf16"
    seen: list[torch.dtype] = []
    for sub in enc.module.modules():
        if isinstance(sub, torch.nn.LSTM):
            sub.register_forward_pre_hook(lambda m, args: seen.append(args[0].dtype))
    x = torch.randn(3, 160, 40)
    out = enc(x)
    assert seen[0] == torch.bfloat16  # the first LSTM layer runs on bfloat16 inputs and weights
    assert out.dtype == torch.float32
    ref = ModuleEncoder(module, "fp32")(x)
    assert float((out * ref).sum(dim=1).min()) > 0.99
    assert all(p.dtype == torch.float32 for p in module.parameters())  # the original is untouched


def test_unknown_precision_is_refused() -> None:
    from speakerembed import ConfigError

    with pytest.raises(ConfigError, match="'auto'"):
        ModuleEncoder(VoiceEncoder(), "fp16")  # type: ignore[arg-type]


def test_cli_accepts_precision_auto(tmp_path: Path) -> None:
    out = tmp_path / "e.npy"
    args = ["embed", str(AUDIO / "alice_1.wav"), "--weights", "resemblyzer", "--device", "cpu"]
    code = main([*args, "--precision", "auto", "-o", str(out)])
    assert code == 0
    assert out.exists()


def test_bf16_layers_do_not_leak_cudnns_compaction_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    """cuDNN warns on every call that bf16 LSTM weights are compacted (torch cannot flatten
    them); the mixed encoder silences that one warning, and only that one."""
    import warnings

    module = SpeakerEmbedder("resemblyzer", device="cpu", precision="fp32").encoder.module
    mixed = encoder._MixedBF16Encoder(module)
    # The warning comes from cuDNN; here a CPU layer stands in for it.
    monkeypatch.setattr(encoder, "_CUDNN_DEVICES", frozenset({"cuda", "cpu"}))
    first = mixed.layers[0]
    assert next(first.parameters()).dtype == torch.bfloat16
    real_forward = first.forward

    def warns(x: torch.Tensor, *args: object) -> object:
        warnings.warn(encoder._CUDNN_COMPACT_WARNING + ". This means ...", UserWarning, stacklevel=1)
        return real_forward(x)

    monkeypatch.setattr(first, "forward", warns)
    windows = torch.rand(2, 160, 40)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = mixed(windows)
    assert not [w for w in caught if encoder._CUDNN_COMPACT_WARNING in str(w.message)]
    assert torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-4)

    def other(x: torch.Tensor, *args: object) -> object:
        warnings.warn("something else", UserWarning, stacklevel=1)
        return real_forward(x)

    monkeypatch.setattr(first, "forward", other)
    with pytest.warns(UserWarning, match="something else"):
        mixed(windows)


def test_bf16_layers_leave_the_warning_filters_alone_off_cudnn(monkeypatch: pytest.MonkeyPatch) -> None:
    """Warning filters are process-wide and the CPU encoder streams call the encoder from
    several threads at once, so off cuDNN the mixed encoder does not touch them."""
    import warnings

    module = SpeakerEmbedder("resemblyzer", device="cpu", precision="fp32").encoder.module
    mixed = encoder._MixedBF16Encoder(module)
    touched: list[object] = []
    real_catch = warnings.catch_warnings

    def spy(*args: object, **kwargs: object) -> object:
        touched.append(args)
        return real_catch(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(warnings, "catch_warnings", spy)
    out = mixed(torch.rand(2, 160, 40))
    assert touched == []
    assert torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-4)
