"""Operators: the people who run modelyard, their roles, accounts, sessions and logins."""
