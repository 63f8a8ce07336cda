"""modelyard's federated LoRA Flower App: the ServerApp aggregates adapters, the ClientApp
trains one round at a site through the main venv's ``modelyard.tune.federated.site_round``."""
