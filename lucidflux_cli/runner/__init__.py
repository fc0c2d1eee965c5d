"""The shared runner every command stands on: a job says what one file means; the runner
discovers, locks, schedules (one process, worker processes, torchrun ranks), reports, resumes
and decides the exit code. It imports no command package."""
