"""Preference alignment: feedback turned into preference data, DPO/KTO on a user's adapter, style soups and learned instructions."""
