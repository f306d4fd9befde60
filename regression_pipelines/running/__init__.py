"""`regress run`: execute area assets through Dagster and summarise what they measured."""
