"""Load generation behind ``modelyard bench``: fixed-length requests at several concurrencies."""
