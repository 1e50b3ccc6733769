"""``python -m llama_cpp.server`` with edgeagent's CPU quirks applied (no AMX where it crashes).

The loopback server the remote tests talk to must run the same llama.cpp kernels as edgeagent;
on machines whose CPU advertises AMX that llama.cpp cannot use, the unpatched server dies on its
first request (see ``edgeagent/runtime/cpu_quirks.py``). Arguments are the server's own.
"""

from __future__ import annotations

import runpy

from edgeagent.runtime.cpu_quirks import apply_cpu_quirks

if __name__ == "__main__":
    apply_cpu_quirks()
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
