"""System tools: calculator (safe arithmetic on the AST, never eval), system_status, current_time."""

from __future__ import annotations

import ast
import dataclasses
import datetime
import json
import math
import operator
import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field

from edgeagent.errors import ToolExecutionError, ToolValidationError
from edgeagent.tools.context import ToolContext
from edgeagent.tools.registry import Tool, tool_from_function

# --- calculator ---------------------------------------------------------------------------------

MAX_INT_BITS = 10_000  # about 3,000 decimal digits: every intermediate integer stays below this
MAX_ROUND_DIGITS = 100
_BINOPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
# name -> (function, min args, max args)
_FUNCS: dict[str, tuple[Callable[..., Any], int, int]] = {
    "sqrt": (math.sqrt, 1, 1),
    "sin": (math.sin, 1, 1),
    "cos": (math.cos, 1, 1),
    "tan": (math.tan, 1, 1),
    "asin": (math.asin, 1, 1),
    "acos": (math.acos, 1, 1),
    "atan": (math.atan, 1, 1),
    "log": (math.log, 1, 2),
    "log10": (math.log10, 1, 1),
    "log2": (math.log2, 1, 1),
    "exp": (math.exp, 1, 1),
    "abs": (abs, 1, 1),
    "round": (round, 1, 2),
    "floor": (math.floor, 1, 1),
    "ceil": (math.ceil, 1, 1),
    "min": (min, 1, 20),
    "max": (max, 1, 20),
}
_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}
_OP_HINT = "use numbers, + - * / // % ** and parentheses"
_CALC_HINT = (
    f"{_OP_HINT}, and the functions {', '.join(_FUNCS)} or the constants {', '.join(_CONSTANTS)}"
)


def _refuse(what: str) -> ToolValidationError:
    return ToolValidationError(f"argument 'expression': {what} is not allowed", hint=_CALC_HINT)


# Everyday arithmetic words and signs, rewritten to Python operators before parsing (after the
# phrases above):
# "15% of 80", "12 times 7", "3 x 4", "10 ÷ 4", "2^10", "1,234 + 4,321".
_NUM = r"(-?\d+(?:\.\d+)?)"
_LIST = r"(-?\d+(?:\.\d+)?(?:\s*,\s*-?\d+(?:\.\d+)?)*\s*,?\s*(?:and|&)\s*-?\d+(?:\.\d+)?)"


def _numbers(text: str) -> list[str]:
    return re.findall(r"-?\d+(?:\.\d+)?", text)


# Everyday phrasings with their numbers: "divide 355 by 113", "the average of 10, 20 and 45".
_ARITH_PHRASES = (
    (re.compile(rf"\b(?:the\s+)?square root of\s+{_NUM}", re.I), lambda m: f"sqrt({m[1]})"),
    (re.compile(rf"\b(?:the\s+)?cube root of\s+{_NUM}", re.I), lambda m: f"{m[1]}**(1/3)"),
    (re.compile(rf"\bdivide\s+{_NUM}\s+by\s+{_NUM}", re.I), lambda m: f"{m[1]}/{m[2]}"),
    (
        re.compile(rf"\bmultiply\s+{_NUM}\s+(?:by|and|with)\s+{_NUM}", re.I),
        lambda m: f"{m[1]}*{m[2]}",
    ),
    (re.compile(rf"\bsubtract\s+{_NUM}\s+from\s+{_NUM}", re.I), lambda m: f"{m[2]}-{m[1]}"),
    (re.compile(rf"\badd\s+{_NUM}\s+(?:and|to)\s+{_NUM}", re.I), lambda m: f"{m[1]}+{m[2]}"),
    (
        re.compile(rf"\b(?:the\s+)?(?:average|mean) of\s+{_LIST}", re.I),
        lambda m: f"({'+'.join(_numbers(m[1]))})/{len(_numbers(m[1]))}",
    ),
    (
        re.compile(rf"\b(?:the\s+)?(?:sum|total) of\s+{_LIST}", re.I),
        lambda m: f"({'+'.join(_numbers(m[1]))})",
    ),
    (
        re.compile(rf"\b(?:the\s+)?product of\s+{_LIST}", re.I),
        lambda m: f"({'*'.join(_numbers(m[1]))})",
    ),
    (re.compile(rf"{_NUM}\s+squared\b", re.I), lambda m: f"{m[1]}**2"),
    (re.compile(rf"{_NUM}\s+cubed\b", re.I), lambda m: f"{m[1]}**3"),
)

_ARITH_WORDS = (
    (re.compile(r"(\d(?:\.\d+)?)\s*(?:%|percent)\s+of\s+", re.IGNORECASE), r"\1/100*"),
    # "20%" alone is a percentage; "7 % 3" (a number follows) stays Python's modulo
    (re.compile(r"(\d(?:\.\d+)?)\s*(?:%|percent)(?!\s*[\d(.])", re.IGNORECASE), r"(\1/100)"),
    (re.compile(r"\b(?:times|multiplied by)\b", re.IGNORECASE), "*"),
    (re.compile(r"\bdivided by\b", re.IGNORECASE), "/"),
    (re.compile(r"\bplus\b", re.IGNORECASE), "+"),
    (re.compile(r"\bminus\b", re.IGNORECASE), "-"),
    (re.compile(r"(?<=\d)\s*[x×]\s*(?=\d)"), "*"),
    (re.compile("÷"), "/"),
    (re.compile(r"\^"), "**"),
)
_THOUSANDS = re.compile(r"(?<![\d.])\d{1,3}(?:,\d{3})+(?![\d.])")


def normalize_expression(expression: str) -> str:
    """``expression`` with everyday arithmetic words and signs as Python operators."""
    text = expression.strip().rstrip("=?").strip()
    text = _THOUSANDS.sub(lambda m: m.group(0).replace(",", ""), text)
    for pattern, build in _ARITH_PHRASES:
        text = pattern.sub(build, text)
    for pattern, replacement in _ARITH_WORDS:
        text = pattern.sub(replacement, text)
    return text


def parse_expression(expression: str) -> ast.Expression:
    """Parse and check an arithmetic expression; anything but arithmetic -> ToolValidationError."""
    try:
        tree = ast.parse(normalize_expression(expression), mode="eval")
    except (SyntaxError, ValueError) as exc:
        raise ToolValidationError(
            f"argument 'expression': {expression!r} is not a valid expression "
            f"({getattr(exc, 'msg', exc)})",
            hint=_CALC_HINT,
        ) from None
    called: set[int] = set()  # ids of the Name nodes being called (ast.walk visits Call first)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Expression, ast.Load)) or type(node) in _BINOPS:
            continue
        if type(node) in _UNARY or isinstance(node, (ast.BinOp, ast.UnaryOp)):
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitXor):
                raise ToolValidationError(
                    "argument 'expression': ^ is not allowed (write powers as **)",
                    hint=_CALC_HINT,
                )
            if isinstance(node, ast.BinOp) and type(node.op) not in _BINOPS:
                raise _refuse(f"the operator {type(node.op).__name__}")
            if isinstance(node, ast.UnaryOp) and type(node.op) not in _UNARY:
                raise _refuse(f"the operator {type(node.op).__name__}")
            continue
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise _refuse(f"the literal {value!r}")
            continue
        if isinstance(node, ast.Name):
            if node.id not in _CONSTANTS and id(node) not in called:
                raise _refuse(f"the name {node.id!r}")
            continue
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else None
            if name not in _FUNCS:
                raise _refuse("calling anything but the listed math functions")
            called.add(id(node.func))
            if node.keywords:
                raise _refuse("keyword arguments")
            _, low, high = _FUNCS[name]
            if not low <= len(node.args) <= high or any(
                isinstance(a, ast.Starred) for a in node.args
            ):
                raise ToolValidationError(
                    f"argument 'expression': {name}() takes {low}"
                    + (f" to {high}" if high != low else "")
                    + f" argument(s), got {len(node.args)}",
                    hint=_CALC_HINT,
                )
            continue
        if isinstance(node, ast.Attribute):
            raise _refuse("attribute access")
        raise _refuse(f"{type(node).__name__}")
    return tree


def _check_size(value: Any) -> Any:
    if isinstance(value, complex):
        raise ToolExecutionError("the result is not a real number")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ToolExecutionError(
            "the result is too large (more than about 3,000 digits)",
            hint="use floats, e.g. 2.0**5000",
        )
    return value


def _power(base: Any, exponent: Any) -> Any:
    """``base ** exponent``, refusing integer powers too large to compute quickly."""
    if (
        isinstance(base, int)
        and isinstance(exponent, int)
        and abs(base) > 1
        and (abs(base).bit_length() - 1) * exponent > MAX_INT_BITS
    ):
        raise ToolExecutionError(
            "the power is too large (more than about 3,000 digits)",
            hint="use floats, e.g. 2.0**5000",
        )
    return base**exponent


def _eval(node: ast.AST) -> Any:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp):
        return _check_size(_UNARY[type(node.op)](_eval(node.operand)))
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            return _check_size(_power(left, right))
        return _check_size(_BINOPS[type(node.op)](left, right))
    if isinstance(node, ast.Call):
        assert isinstance(node.func, ast.Name)
        fn = _FUNCS[node.func.id][0]
        args = [_eval(a) for a in node.args]
        if (
            node.func.id == "round"
            and len(args) == 2
            and (not isinstance(args[1], int) or abs(args[1]) > MAX_ROUND_DIGITS)
        ):
            raise ToolExecutionError(
                f"round() digits must be an integer between -{MAX_ROUND_DIGITS} "
                f"and {MAX_ROUND_DIGITS}"
            )
        return _check_size(fn(*args))
    raise ToolExecutionError(f"cannot evaluate {type(node).__name__}")  # pragma: no cover


def evaluate(expression: str) -> int | float:
    """Evaluate an arithmetic expression safely (parsed and walked, never eval'd)."""
    tree = parse_expression(expression)
    try:
        return _eval(tree)
    except ZeroDivisionError:
        raise ToolExecutionError("division by zero") from None
    except OverflowError as exc:
        raise ToolExecutionError(f"the result is too large ({exc})") from None
    except (ValueError, TypeError) as exc:
        raise ToolExecutionError(f"cannot compute {expression!r}: {exc}") from None
    except RecursionError:
        raise ToolExecutionError("the expression is nested too deeply") from None


def _expression_validator(arguments: dict, context: Any) -> None:
    parse_expression(arguments["expression"])


def calculator(expression: Annotated[str, Field(min_length=1, max_length=200)]) -> str:
    """Compute arithmetic, e.g. (2+3)*4, 2**10, sqrt(2), sin(pi/2), log(100, 10).

    Args:
        expression: the arithmetic expression
    """
    return repr(evaluate(expression))


# --- time and system ----------------------------------------------------------------------------


def _zone(name: str) -> datetime.tzinfo | None:
    """None for "local"; a ZoneInfo for an IANA name; ToolValidationError otherwise."""
    if name.strip().lower() in ("local", ""):
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ToolValidationError(
            f"argument 'timezone': unknown time zone {name!r}",
            hint='use an IANA name such as "Europe/Paris", "America/New_York" or "UTC", or "local"',
        ) from None


def _timezone_validator(arguments: dict, context: Any) -> None:
    _zone(arguments.get("timezone") or "local")


def current_time(timezone: Annotated[str, Field(max_length=64)] = "local") -> dict:
    """The current date and time (ISO 8601) in a time zone.

    Args:
        timezone: "local" or an IANA zone such as "Europe/Paris" or "UTC"
    """
    zone = _zone(timezone)
    now = datetime.datetime.now(zone).astimezone(zone)  # aware, in local time when zone is None
    # the date and time in words first (a small model copies "30 November 2026", and would
    # misread "2026-11-30T15:32:52+00:00"), then the exact ISO form
    return {
        "date": f"{now.strftime('%A')}, {now.day} {now.strftime('%B %Y')}",
        "time": now.strftime("%H:%M"),
        "weekday": now.strftime("%A"),
        "timezone": timezone if zone is not None else (now.tzname() or "local"),
        "iso": now.isoformat(timespec="seconds"),
    }


def system_status() -> dict:
    """CPU load, memory use and battery state of this machine."""
    import psutil

    # values in words with their units: a small model copies "2.4%" or "24106 MB" into its
    # answer, where it would drop the unit hidden in a key name ("memory_total_mb: 24106")
    memory = psutil.virtual_memory()
    out: dict[str, Any] = {
        "cpu_load": f"{psutil.cpu_percent(interval=0.2):.1f}%",
        "cpu_cores": psutil.cpu_count(),
        "memory_total": f"{round(memory.total / 2**20)} MB ({memory.total / 2**30:.1f} GiB)",
        "memory_available": f"{round(memory.available / 2**20)} MB",
        "memory_used": f"{memory.percent:.1f}%",
    }
    battery = None
    sensors = getattr(psutil, "sensors_battery", None)
    if sensors is not None:
        try:
            battery = sensors()
        except Exception:  # some platforms raise instead of returning None
            battery = None
    if battery is None:
        out["battery"] = "no battery found"
    else:
        state = "charging" if battery.power_plugged else "not charging"
        out["battery"] = f"{battery.percent:.0f}% ({state})"
    return out


def _calculator_grounding(arguments: dict, output: str) -> tuple[tuple[str, ...], str]:
    """The calculator's value must be in the answer (as written, or with thousands commas)."""
    facts = [output]
    try:
        value = float(output)
    except ValueError:
        value = math.nan
    if math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
        facts.append(f"{int(value):,}")
    elif math.isfinite(value):  # a rounded value is the same result
        facts.extend(f"{value:.{digits}f}" for digits in (1, 2, 3, 4))
    return tuple(facts), f"{arguments.get('expression', '').strip()} = {output}"


def _time_grounding(arguments: dict, output: str) -> tuple[tuple[str, ...], str] | None:
    """The answer must state the date, the time or the weekday the clock returned."""
    try:
        data = json.loads(output)
        now = datetime.datetime.fromisoformat(data["iso"])
    except (ValueError, KeyError, TypeError):
        return None
    month, weekday = now.strftime("%B"), now.strftime("%A")
    facts = (
        now.strftime("%H:%M"),
        f"{now.hour % 12 or 12}:{now.minute:02d}",
        now.date().isoformat(),
        f"{month} {now.day}",
        f"{now.day} {month}",
        weekday,
    )
    when = f"{weekday}, {month} {now.day}, {now.year}, {now.strftime('%H:%M')}"
    shown = f"It is {when} ({data.get('timezone', 'local')})."
    return facts, shown


def make_system_tools(context: ToolContext) -> list[Tool]:
    """calculator, current_time and system_status (all read-only)."""
    return [
        dataclasses.replace(
            tool_from_function(calculator, validators=(_expression_validator,)),
            grounding=_calculator_grounding,
        ),
        dataclasses.replace(
            tool_from_function(current_time, validators=(_timezone_validator,)),
            grounding=_time_grounding,
        ),
        tool_from_function(system_status),
    ]
