"""The Batch API: input files, batches and their lines, run in idle engine slots."""
