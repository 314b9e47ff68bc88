"""The recording stage: who is being served (context) and what one sample, executor run and judge
evaluation records (recorder), pre-aggregated and published through observable instruments."""
