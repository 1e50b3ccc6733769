"""Specializing the local model on the agent's own history: traces -> dataset -> LoRA -> GGUF.

``dataset`` (format, scrubbing, dedup, clusters), ``export`` (history -> records), ``render``
(records -> the runtime's exact tokens), ``train`` (LoRA with the optional ``[adapt]`` extra),
``convert`` (PEFT -> GGUF adapter, checked in llama.cpp), ``loop`` (index, evaluation,
activation). Heavy imports (torch, transformers, peft) happen inside functions.
"""
