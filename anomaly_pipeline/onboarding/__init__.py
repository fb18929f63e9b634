"""Onboarding: a user's own multi-day history file → day files → the same runs → scores.

``history`` splits the file into landing day files, ``summary`` reads back what the runs made of
it, ``cli`` is ``anomaly-pipeline onboard``.
"""
