"""The Spikes backend: HTTP layer (api/), rules (services/), persistence (store/)."""
