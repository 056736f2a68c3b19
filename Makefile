# Convenience targets; the scripts are the source of truth.
.PHONY: run test bench bench-smoke image

run:
	./scripts/run.sh

test:
	./scripts/test.sh

# The full benchmark (about 5 minutes): warm vs cold, every seed script,
# concurrency 1, 4 and 8. Results: benchmarks/README.md.
bench:
	go run ./benchmarks -duration 5s

# What CI runs so the harness cannot rot: one second per configuration.
bench-smoke:
	go run ./benchmarks -duration 1s
