"""The one error type the compiler raises for bad input; the CLI turns it into a message and exit 2."""

from __future__ import annotations


class CompileError(Exception):
    """Input the compiler cannot handle. The message names what (node, op, file) and why."""


class UnsupportedError(CompileError):
    def __init__(self, node: str, op: str, reason: str) -> None:
        super().__init__(f"node {node!r} ({op}): {reason}")
        self.node, self.op, self.reason = node, op, reason
