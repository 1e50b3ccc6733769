"""Work around CPU features llama.cpp detects but cannot use here (AMX under some hypervisors).

llama.cpp built natively on an x86 CPU that advertises AMX (``amx_tile``, ``amx_int8``) places
weights in its AMX "extra buffer" and multiplies them with tile instructions. Under hypervisors
and sandboxes that advertise AMX without granting its register state, the first multi-token
batch crashes the process (SIGSEGV in ``ggml_backend_amx_mul_mat`` at ``ldtilecfg``; seen on
this project's 2-core build machines). Loading with ``use_extra_bufts = false`` keeps the weights
in plain CPU buffers: AVX-512/AVX2 kernels, no AMX, no crash. Elsewhere nothing changes (the
extra buffers also hold ARM/AVX2 repacked weights, which are worth keeping).

``EDGEAGENT_EXTRA_BUFFERS`` overrides the detection: ``1`` keeps them, ``0`` turns them off.
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

AMX_FLAGS = frozenset({"amx_tile", "amx_int8", "amx_bf16"})


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU feature flags Linux reports (empty elsewhere or when unreadable)."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def extra_buffers_wanted(flags: frozenset[str] | None = None) -> bool:
    """False where llama.cpp's AMX path would be used (x86 with AMX), unless overridden."""
    override = os.environ.get("EDGEAGENT_EXTRA_BUFFERS", "").strip().lower()
    if override in {"1", "true", "yes", "on"}:
        return True
    if override in {"0", "false", "no", "off"}:
        return False
    if platform.machine().lower() not in {"x86_64", "amd64"}:
        return True
    return not (AMX_FLAGS & (cpu_flags() if flags is None else flags))


@functools.cache
def apply_cpu_quirks() -> bool:
    """Make every later ``llama_cpp.Llama`` load skip extra buffers when they would crash.

    Patches ``llama_cpp.llama_model_default_params`` (what ``Llama.__init__`` starts from) once
    per process; returns whether the extra buffers stay on. Also used by the benchmarks and by
    the test server so the anchor and the server run the same kernels as edgeagent.
    """
    import llama_cpp.llama_cpp as bindings  # the module ``Llama.__init__`` reads it from

    if extra_buffers_wanted():
        return True
    original = bindings.llama_model_default_params
    if not hasattr(original(), "use_extra_bufts"):  # an older llama.cpp without the switch
        return True

    def default_params_without_extra_buffers():
        params = original()
        params.use_extra_bufts = False
        return params

    bindings.llama_model_default_params = default_params_without_extra_buffers
    return False
