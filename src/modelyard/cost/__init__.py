"""Cost: the hardware cost model, the comparison with hosted APIs, chargeback."""
