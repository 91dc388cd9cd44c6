"""ptst: Pure Tuning, Safe Testing — keep chat LLMs aligned after fine-tuning."""

__version__ = "0.1.0"
