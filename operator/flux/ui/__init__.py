"""The web console (``flux ui``): runs, their timelines, graphs and histories.

It only reads. Pages are built from view models (``summary``, ``timeline``,
``graph``) computed from a source of stored runs (``sqlite_source`` for the
embedded engine); values are shown as the JSON history stores them, so no
page ever imports a type that data names.
"""
