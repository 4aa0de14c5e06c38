"""Running a job: the registry, the runner, its locks and guards, pings and the run's identity."""
