"""`status` (SPEC §11): `collect` reads the jobs' runs and the data into a `report`; the
health `rules` (pure functions) make typed `findings` of them."""
