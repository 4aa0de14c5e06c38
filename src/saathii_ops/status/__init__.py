"""`status` (SPEC §11): what it reads of the jobs and the data, and the health rules."""
