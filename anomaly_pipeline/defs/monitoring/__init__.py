"""Monitoring and automation: drift statistics, sensors, the daily schedule."""
