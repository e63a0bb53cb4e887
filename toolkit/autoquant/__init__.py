"""`--quantize auto`: candidates built, measured (here or on the emulated Pi)
and the fastest within budget kept, with its trade-off table."""
