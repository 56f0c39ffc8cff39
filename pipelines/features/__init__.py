"""build-features: silver tables → ``gold.patient_features`` (dictionary in FEATURES.md)."""
