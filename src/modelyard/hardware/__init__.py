"""Hardware: detect this machine, measure its memory bandwidth, keep named profiles."""
