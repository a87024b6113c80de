"""End-to-end tests: the real local server (tools/devserver.py) over real HTTP."""
