"""Engines: the :class:`~modelyard.engines.base.Engine` protocol and its backends."""
