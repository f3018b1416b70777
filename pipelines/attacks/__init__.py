"""What the protection is worth: the attack algorithms (recovery), the visual metrics (visual) and
the drivers that run them on a run's data (learned: networks trained or keyed by an attacker;
drivers: known plaintext, key extraction, visual privacy). The attack task reports them."""
