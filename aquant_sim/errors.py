"""The project's exception types.

Every error that bad input can cause is one of these, with a message that names what is wrong
and where (the op, the field, the file).
"""


class AquantError(Exception):
    """Base class of every error this project raises on purpose."""


class ProgramError(AquantError, ValueError):
    """An integer program, or one of its ops, tensors or quantizers, is malformed."""


class ArtifactError(AquantError, ValueError):
    """An artifact file is malformed, truncated, corrupt or of an unknown version."""


class InputError(AquantError, ValueError):
    """An input tensor does not fit the program (shape, dtype, NaN or Inf, range)."""


class UnsupportedError(AquantError, NotImplementedError):
    """A model uses a layer or feature that the project does not support."""


class DataError(AquantError, ValueError):
    """A data set is missing, or one of its files or folders is malformed, truncated or corrupt."""


class ConfigError(AquantError, ValueError):
    """A name or setting given by the user (a model name, a width, a hyper-parameter) is invalid."""
