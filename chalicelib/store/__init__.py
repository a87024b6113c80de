"""Persistence: PynamoDB models, table names, transactions."""
