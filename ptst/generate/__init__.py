"""Generation stage: render prompts under a test template and produce answers with a backend."""

from ptst.generate.backends import BACKENDS, BackendSpec
from ptst.generate.base import Backend, Completion, Decoding, PromptItem
from ptst.generate.config import GenerateConfig
from ptst.generate.runner import run

__all__ = ["BACKENDS", "Backend", "BackendSpec", "Completion", "Decoding", "GenerateConfig", "PromptItem", "run"]
