"""The one exception root and its few meaningful subclasses.

Every message is written for the person at the terminal: the CLI prints ``str(err)`` and exits
non-zero, with no traceback.
"""

from __future__ import annotations


class LlmPerfError(Exception):
    """Root of every error this package raises on purpose."""

    exit_code = 1


class ConfigError(LlmPerfError):
    """A params file, model name, engine name or option is wrong."""

    exit_code = 2


class WeightsError(LlmPerfError):
    """Weights cannot be found, fetched, converted or written."""


class EngineError(LlmPerfError):
    """An engine failed to prepare or to benchmark."""


class ParseError(LlmPerfError):
    """Text an engine printed does not hold what the parser needs."""


class ProcessError(EngineError):
    """An external process exited non-zero; carries the command, exit code and output tail."""

    def __init__(self, argv, returncode, tail, first_error=None):
        import signal

        self.argv = list(argv)
        self.returncode = returncode
        self.tail = tail
        how = f"exit code {returncode}"
        if returncode < 0:
            try:
                how = f"signal {signal.Signals(-returncode).name}"
            except ValueError:
                pass
        name = self.argv[2] if self.argv[1:2] == ["-m"] and len(self.argv) > 2 else self.argv[0]
        said = f": {first_error}" if first_error else ""
        super().__init__(f"{name} failed ({how}){said}\n{tail}".rstrip())


class StepTimeout(EngineError):
    """A step ran past its time limit and was stopped."""


class ContainerError(LlmPerfError):
    """Docker is missing, refused, or a build or container failed."""


class SchemaError(LlmPerfError):
    """A result file is not valid or has a schema version this package does not know."""


def short(value, limit: int = 60) -> str:
    """repr() of a value a user gave, cut short: an error message never echoes a huge value."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 5] + " …" + text[-3:]
