"""Captioner backends behind one interface: facts (deterministic baseline), vllm, vllm-offline, transformers."""
