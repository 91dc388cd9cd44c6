"""Generation stage: render prompts under a test template and produce answers with a backend."""

from ptst.generate.backends import BACKENDS, BackendSpec
from ptst.generate.base import Backend, Completion, Decoding, PromptItem
from ptst.generate.runner import run
from ptst.specs.generate import GenerateConfig

__all__ = ["BACKENDS", "Backend", "BackendSpec", "Completion", "Decoding", "GenerateConfig", "PromptItem", "run"]
