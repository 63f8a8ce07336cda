"""Quantization of registered GGUF versions with llama.cpp, and the quality/speed report."""
