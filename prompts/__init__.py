"""Versioned prompt templates for the caption chain (one folder per version) and their loader."""

from prompts.loader import GenerationParams, PromptError, PromptSet, PromptStep, available_versions, load_prompts

__all__ = ["GenerationParams", "PromptError", "PromptSet", "PromptStep", "available_versions", "load_prompts"]
