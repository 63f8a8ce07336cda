"""The advisor: a knowledge base of open-weight models, memory and speed estimates, recommend."""
