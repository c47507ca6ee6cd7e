# placeholder until the help branch lands: resolved to that branch's torch-free module at merge
from .train import TrainConfig  # noqa: F401
from .evaluate import EvalConfig  # noqa: F401
