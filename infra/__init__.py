"""Deploying the backend to AWS: the stack's template, its IAM policies, packaging, deploy,
secrets, teardown and a smoke test. Never shipped to Lambda (only app.py and chalicelib/ are)."""
