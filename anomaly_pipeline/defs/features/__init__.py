"""Feature stage: the dbt project (staging → sessions → user_day_features), behaviour sequences."""
