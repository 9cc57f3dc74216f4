"""Pure domain model: states, the transition table, IDs, retry policy, errors.

Imports nothing of ours and nothing of grpc or the database.
"""
