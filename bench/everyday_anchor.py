"""The anchor of the everyday suite: llama-cpp-python's own function calling, at its best.

``Llama(chat_format="chatml-function-calling").create_chat_completion(messages, tools,
tool_choice="auto", temperature=0)`` with a system message (the handler lists the tools only
inside a system message), the tools in OpenAI format from edgeagent's registry, in the same loop
shape as edgeagent's agent (validate -> executor under the same Policy -> results back ->
until an answer or ``max_steps``; a successful call is not run twice).

What its template renders (llama_cpp/llama_chat_format.py, ``chatml_function_calling``):
- system, user and assistant turns only. A ``tool`` turn renders as ``<|im_start|>tool\\n`` with
  neither its content nor ``<|im_end|>``, so tool results go back as user turns
  (``Result of functions.NAME:\\n...``), after the assistant turn with its ``tool_calls``
  (rendered ``functions.NAME:\\n{arguments}``).
- In ``auto`` mode it first decodes ``functions.NAME:`` or ``message:`` under a grammar. Its
  message branch then decodes under a grammar that admits only ``functions.NAME:`` or
  ``<|im_end|>``, so its own text answer is empty (or a stray function header). To give the
  anchor its best shot, when it chooses ``message:`` we decode the message ourselves, freely,
  on the exact prompt the handler built plus ``message:\\n``, bounded by ``max_tokens``.
  After a repeated call (edgeagent then asks its model for an answer) the anchor is asked the
  same way: the handler's prompt, ``message:\\n``, a free bounded decode.
- The handler passes ``max_tokens=None`` to its inner decodes (a call's arguments can run to the
  context limit), so the model lives in a worker subprocess with a wall-clock cap per request;
  on overrun the worker is killed and restarted (``AnchorWorker`` from ``bench_bfcl``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ANCHOR_SYSTEM = "You are a helpful assistant."
ANCHOR_TEMPLATE_LINES = (
    "You have access to the following functions:",
    "You can respond to users messages with either a single message or one or more function calls.",
    "To respond with a message begin the message with 'message:', use the following format:",
    "To respond with one or more function calls begin the message with "
    "'functions.<function_name>:', use the following format:",
)


class _PromptOnly(Exception):
    """Raised from inside the handler once its prompt is known and no decode is wanted."""


def worker_main(model_path: str, threads: int, n_ctx: int) -> None:
    """One JSON request per line on stdin, one JSON reply per line on a private stdout.

    Request: ``{"id", "messages", "tools", "mode": "auto"|"answer"|"prompt", "max_tokens",
    "want_prompt"}``. Reply: ``{"id", "tool_calls": [[name, arguments_json]], "content",
    "finish_reason", "handler_choice", "inner": [...], "cpu_s", "prompt"?}``.
    """
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever llama.cpp prints goes to stderr, never into the protocol
    from bench.bench_bfcl import load_anchor

    llm = load_anchor(model_path, threads, n_ctx)
    real_completion = llm.create_completion
    state: dict = {"inner": [], "stop": "never"}

    def recording_completion(*args, **kwargs):
        inner = state["inner"]
        prompt = kwargs.get("prompt", args[0] if args else "")
        entry = {"prompt": prompt, "grammar": kwargs.get("grammar") is not None}
        inner.append(entry)
        if state["stop"] == "first":
            raise _PromptOnly
        if state["stop"] == "message" and len(inner) == 2 and "message" in inner[0]["text"]:
            raise _PromptOnly  # the handler's grammar-bound message decode: we decode it freely
        response = real_completion(*args, **kwargs)
        choice = response["choices"][0]
        entry["text"] = choice["text"]
        entry["finish_reason"] = choice.get("finish_reason")
        entry["tokens"] = (response.get("usage") or {}).get("completion_tokens", 0)
        return response

    llm.create_completion = recording_completion
    out.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        cpu0 = time.process_time()
        reply: dict = {"id": request["id"]}
        state["inner"] = []
        mode = request.get("mode", "auto")
        state["stop"] = {"auto": "message", "answer": "first", "prompt": "first"}[mode]
        max_tokens = int(request.get("max_tokens") or 256)
        try:
            message = None
            try:
                response = llm.create_chat_completion(
                    messages=request["messages"],
                    tools=request["tools"],
                    tool_choice="auto",
                    max_tokens=max_tokens,
                    temperature=0.0,
                )
                message = response["choices"][0]["message"]
                reply["finish_reason"] = response["choices"][0].get("finish_reason")
            except _PromptOnly:
                pass
            inner = state["inner"]
            prompt = inner[0]["prompt"] if inner else ""
            if message is not None and message.get("tool_calls"):
                reply["handler_choice"] = "functions"
                reply["tool_calls"] = [
                    [c["function"]["name"], c["function"]["arguments"]]
                    for c in message["tool_calls"]
                ]
                reply["content"] = None
            elif mode == "prompt":
                reply["handler_choice"] = None
            else:
                reply["handler_choice"] = "message" if mode == "auto" else "answer"
                if message is not None:  # the handler answered by itself (not expected)
                    reply["handler_content"] = message.get("content")
                state["stop"] = "never"
                completion = real_completion(
                    prompt=prompt + "message:\n",
                    max_tokens=max_tokens,
                    temperature=0.0,
                    stop=["<|im_end|>"],
                )
                choice = completion["choices"][0]
                reply["content"] = choice["text"]
                reply["finish_reason"] = choice.get("finish_reason")
                reply["answer_tokens"] = (completion.get("usage") or {}).get("completion_tokens", 0)
            if request.get("want_prompt") or mode == "prompt":
                reply["prompt"] = prompt
            reply["inner"] = [
                {k: v for k, v in e.items() if k != "prompt"} | {"prompt_chars": len(e["prompt"])}
                for e in inner
            ]
        except Exception as exc:  # noqa: BLE001 - reported per request; the worker goes on
            reply["error"] = f"{type(exc).__name__}: {exc}"
        reply["cpu_s"] = time.process_time() - cpu0
        out.write(json.dumps(reply) + "\n")


def make_worker(model_path: Path, threads: int, n_ctx: int, cap_s: float):
    """bench_bfcl's AnchorWorker (process, cap, restart) running this module's worker."""
    from bench.bench_bfcl import AnchorWorker

    worker = AnchorWorker(model_path, threads, n_ctx, cap_s)
    worker.args = [
        sys.executable,
        str(Path(__file__).resolve().parent / "bench_everyday.py"),
        "--anchor-worker",
        str(model_path),
        "--threads",
        str(threads),
        "--n-ctx",
        str(n_ctx),
    ]
    return worker


def result_turn(name: str, ok: bool, body: str) -> dict:
    """A tool result as a turn the anchor's template renders (it drops ``tool`` turns)."""
    head = f"Result of functions.{name}:" if ok else f"Error from functions.{name}:"
    return {"role": "user", "content": f"{head}\n{body}"}


def run_anchor_task(
    worker, prompt: str, settings, *, approve: bool, confirm, max_tokens: int, show_prompt=None
) -> dict:
    """One request through the anchor in edgeagent's loop shape; returns a plain record."""
    from edgeagent.agent.propose import build_tool_registry
    from edgeagent.agent.validate import validate_call
    from edgeagent.tools.context import ToolContext
    from edgeagent.tools.executor import Executor
    from edgeagent.tools.policy import Policy
    from edgeagent.types import ToolCall

    context = ToolContext(settings=settings, allowed_roots=settings.allowed_roots)
    registry = build_tool_registry(None, context)
    policy = Policy.from_settings(settings, auto_approve=approve)
    executor = Executor(registry, policy, context, confirm)
    tools = [t.to_openai() for t in registry]
    messages: list[dict] = [
        {"role": "system", "content": ANCHOR_SYSTEM},
        {"role": "user", "content": prompt},
    ]
    record: dict = {
        "calls": [],
        "notices": [],
        "finish_reasons": [],
        "steps": 0,
        "capped": 0,
        "cpu_s": 0.0,
        "output_tokens": 0,
        "error": None,
    }
    answer, mode, succeeded, ok_outputs = None, "auto", set(), []
    for step in range(1, settings.max_steps + 1):
        record["steps"] = step
        request = {
            "id": f"{time.monotonic_ns()}",
            "messages": messages,
            "tools": tools,
            "mode": mode,
            "max_tokens": max_tokens,
            "want_prompt": show_prompt is not None,
        }
        reply = worker.ask(request)
        if reply is None:  # overran the wall-clock cap: killed, no answer
            record["capped"] += 1
            record["cpu_s"] += worker.cap_s * worker_threads(worker)
            record["finish_reasons"].append("cap")
            answer = ""
            break
        record["cpu_s"] += float(reply.get("cpu_s") or 0.0)
        for entry in reply.get("inner") or []:
            record["output_tokens"] += int(entry.get("tokens") or 0)
        record["output_tokens"] += int(reply.get("answer_tokens") or 0)
        if show_prompt is not None and reply.get("prompt") is not None:
            show_prompt(step, reply["prompt"])
        if "error" in reply:
            record["error"] = reply["error"]
            answer = ""
            break
        record["finish_reasons"].append(reply.get("finish_reason") or "")
        if not reply.get("tool_calls"):
            answer = reply.get("content") or ""
            break
        calls = []
        for name, raw in reply["tool_calls"]:
            try:
                arguments = json.loads(raw)
            except (TypeError, json.JSONDecodeError):
                arguments = raw
            call = ToolCall(name, arguments if isinstance(arguments, dict) else {})
            if not isinstance(arguments, dict):
                call.status, call.error = "invalid", f"arguments are not a JSON object: {raw!r}"
            calls.append(call)
        valid = []
        for call in calls:
            if call.status != "invalid" and validate_call(call, registry, context).valid:
                valid.append(call)
        fresh = [c for c in valid if _sig(c) not in succeeded]
        for call in valid:
            if call not in fresh:
                call.status, call.error = "skipped", "already ran with these arguments"
        if valid and not fresh:
            record["calls"] += [_call_dict(c) for c in calls]
            record["notices"].append("repeated call not run; asking for the answer")
            mode = "answer"
            continue
        results = executor.run_many(fresh)
        by_id = {c.id: r for c, r in zip(fresh, results, strict=True)}
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": f"call_{c.id}",
                        "type": "function",
                        "function": {
                            "name": c.name,
                            "arguments": json.dumps(c.arguments, ensure_ascii=False),
                        },
                    }
                    for c in calls
                ],
            }
        )
        for call in calls:
            result = by_id.get(call.id)
            if result is None:  # invalid, or an already successful call: not run
                messages.append(result_turn(call.name, False, call.error or call.status))
                continue
            body = result.output if result.ok else (result.error or result.status)
            messages.append(result_turn(call.name, result.ok, body))
            if result.ok:
                succeeded.add(_sig(call))
                ok_outputs.append(result.output)
        record["calls"] += [_call_dict(c, by_id.get(c.id)) for c in calls]
        mode = "auto"
    else:
        answer = ok_outputs[-1][:2000] if ok_outputs else "I could not finish this request."
        record["notices"].append(f"stopped after {settings.max_steps} steps")
    record["answer"] = answer or ""
    return record


def worker_threads(worker) -> int:
    try:
        return int(worker.args[worker.args.index("--threads") + 1])
    except (ValueError, IndexError):
        return 1


def _sig(call) -> str:
    return json.dumps([call.name, call.arguments], sort_keys=True, ensure_ascii=False)


def _call_dict(call, result=None) -> dict:
    status = result.status if result is not None else call.status
    error = (result.error if result is not None else call.error) or None
    return {
        "name": call.name,
        "arguments": call.arguments,
        "status": status,
        "error": error[:300] if error else None,
    }
