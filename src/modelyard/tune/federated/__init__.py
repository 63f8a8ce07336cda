"""Federated LoRA: sites train one shared adapter on their own data; only the adapter travels."""
