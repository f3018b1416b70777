"""Sensor and ADC simulation with keyed readout (see the sensor issue; not built yet)."""
