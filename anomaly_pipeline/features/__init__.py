"""The user-day features: one catalogue (``catalogue.py``) from which the dbt column list, the
mart's documentation, the pandera contract and the reason rules are derived."""
