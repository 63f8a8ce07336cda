"""modelyard: the whole life of an open-weight model inside an organisation."""

__version__ = "0.1.0"
