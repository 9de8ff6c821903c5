"""Health: every attempt is booked; failures drive the auto-disable rule, the probe and recovery."""
