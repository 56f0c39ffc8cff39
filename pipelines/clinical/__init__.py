"""Clinical data: FHIR R4 / CSV ingestion, treatment lines, outcomes, comorbidity indices."""
