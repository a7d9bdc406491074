"""Reports for people reviewing a change: ``review`` compares two revisions' params, metrics and plots."""
