"""The terminal app (Textual): the only package that imports textual.

``edgeagent.ui.app.make_app(settings, agent=None)`` builds the app; ``run_app(settings)`` runs it.
Importing this package alone imports nothing from Textual.
"""
