# placeholder until the help branch lands: resolved to that branch's torch-free module at merge
from .degrade import KINDS, DegradationConfig  # noqa: F401
