"""The terminal app (Textual): the only package that imports textual.

``edgeagent.ui.app.make_app(settings, model=None, agent_options=None)`` builds the app (its agent
session is built at mount with ``make_agent``); ``run_app(settings)`` runs it.
Importing this package alone imports nothing from Textual.
"""
