"""Day-2 operations of an instance: what an operator does to it after `up`, and the documents
that say how (the incident runbook)."""
