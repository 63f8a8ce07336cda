"""Intake: bring model files into the store safely, with their metadata, or refuse them."""
