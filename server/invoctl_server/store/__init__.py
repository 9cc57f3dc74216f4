"""Postgres store: named queries, the one transition function, and operations on rows.

Store functions take a connection inside a transaction the caller owns, and `now`.
"""
