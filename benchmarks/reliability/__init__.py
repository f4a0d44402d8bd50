"""The reliability and security suite (issue 8): isolation, crash safety, concurrency,
complete deletion, poisoning and injection, secret redaction and fuzzing, each a part with a
`run(profile, workdir)` that returns its figures; `python -m benchmarks.reliability` reports them."""
