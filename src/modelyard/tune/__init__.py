"""LoRA fine-tuning of registered models; the result is a new GGUF version with lineage."""
