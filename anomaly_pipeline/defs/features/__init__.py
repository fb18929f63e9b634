"""Feature stage: the dbt project (staging → int_sessions → user_day_features), behaviour
sequences."""
