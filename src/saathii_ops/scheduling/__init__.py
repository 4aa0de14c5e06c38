"""Scheduling (SPEC §10): the jobs' schedule in a crontab or as Kubernetes CronJobs.

- `expressions`: cron expressions, the server's timezone, business time shifted to it;
- `lines`: each job's crontab line and the block that holds them;
- `block`: the block as text inside a crontab (find, replace, remove, what it records);
- `targets`: where the crontab lives, and the lock around changing it;
- `use_cases`: install, remove and inspect (`cron install | remove | show`);
- `kubernetes`: CronJob manifests.
"""
