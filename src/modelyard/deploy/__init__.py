"""Deployment manifests: export what is served, diff two exports, reproduce one elsewhere."""
