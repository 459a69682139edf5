"""What users do with the calls: differential counts, review, PDF reports, teaching and batch runs."""
