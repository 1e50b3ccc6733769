"""Screens of the terminal app: the confirmation modal."""

from edgeagent.ui.screens.confirm import ConfirmCall

__all__ = ["ConfirmCall"]
