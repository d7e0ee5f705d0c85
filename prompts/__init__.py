"""The coaching playbook: cards as data (``cards.toml``) and the validating loader."""

from prompts.playbook import PlaybookError, load_playbook

__all__ = ["PlaybookError", "load_playbook"]
